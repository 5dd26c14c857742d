using CowDisk.Engine.Native;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>
/// A daemon's session under a name in the attach registry (attach, serve): it holds the name's lock for its
/// life and writes its outcome into the record before letting go, so a detach waiting for the name reads how
/// it ended. Subclasses bring their parts up and tear them down (<see cref="Teardown"/>), step by step.
/// </summary>
public abstract class RegisteredSession : IDisposable
{
    private LifetimeLock? _claim;

    protected AttachRegistry Registry { get; }
    protected Action<string> Log { get; }
    public AttachRecord Record { get; protected set; }

    private protected RegisteredSession(AttachRegistry registry, AttachRecord record, LifetimeLock claim, Action<string> log)
    {
        Registry = registry;
        Record = record;
        _claim = claim;
        Log = log;
    }

    /// <summary>Undoes everything brought up, in reverse; returns what failed (empty when clean).</summary>
    protected abstract List<string> Teardown();

    /// <summary>
    /// Clean shutdown: the outcome (detached, or failed with the reasons) goes into the record before the name is
    /// let go. Throws when it was not clean.
    /// </summary>
    public void Stop()
    {
        if (_claim is null) return;
        Record = Record with { State = AttachState.Stopping };
        Registry.Write(Record);
        var errors = Teardown();
        Record = errors.Count == 0
            ? Record with { State = AttachState.Detached }
            : Record with { State = AttachState.Failed, Error = string.Join("; ", errors) };
        try { Registry.Write(Record); }
        finally { Release(clean: errors.Count == 0); }
        if (Record.Error is { } error) throw new AttachException(error);
    }

    /// <summary>One teardown step: a failure is recorded and logged, and the next step still runs.</summary>
    protected void Step(List<string> errors, string what, Action action)
    {
        try { action(); }
        catch (Exception error)
        {
            errors.Add($"{what}: {error.Message}");
            Log($"shutdown: {what} failed: {error.Message}");
        }
    }

    /// <summary>Lets go of the name; the lock file goes too unless something failed (then cleanup finds it).</summary>
    private void Release(bool clean)
    {
        if (clean) _claim?.ReleaseAndDelete();
        else _claim?.Dispose();
        _claim = null;
    }

    /// <summary>Undoes a start that failed: nobody waits for an outcome, so the record goes.</summary>
    public void Dispose()
    {
        if (_claim is null) return;
        var errors = Teardown();
        Step(errors, "remove record", () => Registry.Remove(Record.Name));
        Release(clean: errors.Count == 0);
        GC.SuppressFinalize(this);
    }
}
