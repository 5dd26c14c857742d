namespace CowDisk.Tests;

/// <summary>
/// A test's own thread: an exception on it is caught and rethrown by <see cref="Join"/> as a test failure with
/// the thread's name, instead of escaping the thread and taking the whole test host down.
/// </summary>
public sealed class TestThread
{
    private readonly Thread _thread;
    private Exception? _failure;

    public string Name { get; }

    private TestThread(string name, Action body)
    {
        Name = name;
        _thread = new Thread(() =>
        {
            try { body(); }
            catch (Exception e) { _failure = e; }
        }) { IsBackground = true, Name = name };
    }

    public static TestThread Start(string name, Action body)
    {
        var t = new TestThread(name, body);
        t._thread.Start();
        return t;
    }

    /// <summary>Waits (a thread still running after the guard is a hang) and fails the test if the thread threw.</summary>
    public void Join(TimeSpan? guard = null)
    {
        if (!_thread.Join(guard ?? TimeSpan.FromSeconds(120)))
            throw new Xunit.Sdk.XunitException($"thread {Name} is still running: a hang");
        if (_failure is not null) throw new Xunit.Sdk.XunitException($"thread {Name} failed: {_failure}");
    }
}
