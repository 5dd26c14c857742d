using System.Text.Json;
using CowDisk.Engine.Native;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>
/// The attachments of this machine, as files under <see cref="AttachPaths.RunDirectory"/>. A daemon holds the
/// flock on NAME.lock for its whole life, so "lock free but record present" means it ended: with its outcome in
/// the record (detached or failed) if it shut down, without one if it died. Whoever takes the lock next cleans up
/// after it (unmount, unbind the loop device, remove the link and the record), except while a detach holds
/// NAME.detach: that record is the detach's answer.
/// </summary>
public sealed class AttachRegistry(AttachPaths paths)
{
    private static readonly TimeSpan StaleLoopWait = TimeSpan.FromSeconds(2);

    public AttachPaths Paths { get; } = paths;

    public void EnsureDirectories()
    {
        Directory.CreateDirectory(Paths.RunDirectory);
        Directory.CreateDirectory(Paths.LinkDirectory);
    }

    /// <summary>
    /// Takes the name for a daemon starting up (attach or serve), after cleaning up whatever a dead daemon of
    /// that name left; throws when a live daemon has it.
    /// </summary>
    internal LifetimeLock ClaimForDaemon(string name)
    {
        EnsureDirectories();
        var claim = TryClaim(name);
        // Held, but not by a running daemon of this name: a `list` or `attach` elsewhere is cleaning up after a dead
        // one (it holds the lock for that moment). Wait for it rather than fail.
        for (long until = Environment.TickCount64 + 10_000; claim is null && Environment.TickCount64 < until &&
             !(Read(name) is { } rec && DaemonProcess.IsRunning(rec.Pid, name: null));)
        {
            Thread.Sleep(20);
            claim = TryClaim(name);
        }
        if (claim is null)
        {
            var holder = Read(name);
            throw new AttachException($"name '{name}' is already attached{(holder is null ? "" : $" to {holder.Image} (pid {holder.Pid})")}");
        }
        if (IsBeingDetached(name))
        {
            claim.Dispose();   // the detach still has to read the old daemon's outcome from the record
            throw new AttachException($"name '{name}' is being detached; try again once the detach has finished");
        }
        CleanUpClaimed(name); // whatever a dead daemon of this name left behind
        return claim;
    }

    /// <summary>Takes the name for this process; null when a live daemon already has it.</summary>
    internal LifetimeLock? TryClaim(string name) => LifetimeLock.TryAcquire(Paths.LockPath(name));

    /// <summary>
    /// Whether the daemon of name is alive. Root asks its lock; others cannot open the lock (root's, 0600) and go
    /// by the record's pid still running an attach of that name.
    /// </summary>
    public bool IsAlive(string name) => ProcessControl.IsRoot
        ? LifetimeLock.IsHeld(Paths.LockPath(name))
        : Read(name) is { } record && DaemonProcess.IsRunning(record.Pid, name);

    /// <summary>
    /// Whether a running daemon has the name: its lock is held and its record's process still runs it. A lock held
    /// by a daemon killed a moment ago (still exiting) or by a cleanup is not: a new daemon waits for it (Claim).
    /// </summary>
    public bool IsTaken(string name) => IsAlive(name) && Read(name) is { } record && DaemonProcess.IsRunning(record.Pid, name: null);

    /// <summary>A detach waits for this name's outcome: the record stays until it has read it.</summary>
    public bool IsBeingDetached(string name) => LifetimeLock.IsHeld(Paths.DetachLockPath(name));

    public AttachRecord? Read(string name)
    {
        string path = Paths.RecordPath(name);
        try { return JsonSerializer.Deserialize(File.ReadAllText(path), AttachJsonContext.Default.AttachRecord); }
        catch (FileNotFoundException) { return null; }
        catch (JsonException) { return null; } // half-written by a daemon killed mid-write: treated as absent
        catch (UnauthorizedAccessException) { throw RootOnly(path); }
    }

    private static AttachException RootOnly(string path) =>
        new($"cannot read {path}: attachments are root's (run this as root)");

    /// <summary>Replaces the record atomically (write aside, rename over).</summary>
    public void Write(AttachRecord record)
    {
        string path = Paths.RecordPath(record.Name), temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(record, AttachJsonContext.Default.AttachRecord));
        File.Move(temporary, path, overwrite: true);
    }

    public void Remove(string name) => File.Delete(Paths.RecordPath(name));

    public List<string> Names()
    {
        try
        {
            return Directory.EnumerateFiles(Paths.RunDirectory, "*.json")
                .Select(f => Path.GetFileNameWithoutExtension(f)!).Order(StringComparer.Ordinal).ToList();
        }
        catch (DirectoryNotFoundException) { return []; }
        catch (UnauthorizedAccessException) { throw RootOnly(Paths.RunDirectory); }
    }

    /// <summary>
    /// Every attachment. One whose daemon shut down cleanly is left out; one that failed or died is reported
    /// once as "failed" or "stale" and cleaned up (by root, and not while a detach waits for its outcome).
    /// </summary>
    public List<AttachmentStatus> List()
    {
        var statuses = new List<AttachmentStatus>();
        foreach (string name in Names())
        {
            if (Read(name) is not { } record) continue;
            if (IsAlive(name) && !(ProcessControl.IsRoot && DaemonProcess.IsExiting(record.Pid) && WaitForRelease(name)))
            {
                statuses.Add(AttachmentStatus.From(record, record.State));
                continue;
            }
            if (ProcessControl.IsRoot && !IsBeingDetached(name)) CleanUpIfStale(name);
            if (record.State == AttachState.Detached) continue;
            statuses.Add(AttachmentStatus.From(record, record.State == AttachState.Failed ? AttachState.Failed : AttachState.Stale));
        }
        return statuses;
    }

    /// <summary>
    /// Waits a moment for the lock of a daemon that is exiting (killed: its I/O already fails, its files are still
    /// being closed), so that list reports it stale at once instead of running. False if it is still held.
    /// </summary>
    private bool WaitForRelease(string name)
    {
        long deadline = Environment.TickCount64 + ExitingDaemonWaitMs;
        while (IsAlive(name))
        {
            if (Environment.TickCount64 > deadline) return false;
            Thread.Sleep(5);
        }
        return true;
    }

    private const int ExitingDaemonWaitMs = 3000;

    /// <summary>The live attachment that has the image open for writing, or null.</summary>
    public AttachRecord? FindWriter(string image)
    {
        string wanted = CanonicalPath.Of(image);
        foreach (string name in Names())
            if (Read(name) is { WrittenImage: { } written } record && CanonicalPath.Of(written) == wanted && IsAlive(name)) return record;
        return null;
    }

    /// <summary>The live attachment whose use of image conflicts with a new one, or null.</summary>
    public AttachRecord? FindConflict(string image, bool wantsWrite, string exceptName)
    {
        string wanted = CanonicalPath.Of(image);
        foreach (string name in Names())
        {
            if (name == exceptName || Read(name) is not { } record || !IsAlive(name)) continue;
            bool theyWrite = record.WrittenImage is { } written && CanonicalPath.Of(written) == wanted;
            bool theyRead = record.OpenImages.Any(open => CanonicalPath.Of(open) == wanted);
            if (theyWrite || (wantsWrite && theyRead)) return record;
        }
        return null;
    }

    /// <summary>Cleans up after a dead daemon of this name; false when a live daemon holds it.</summary>
    public bool CleanUpIfStale(string name)
    {
        var claim = TryClaim(name);
        if (claim is null) return false;
        try { CleanUpClaimed(name); }
        catch
        {
            claim.Dispose();
            throw;
        }
        claim.ReleaseAndDelete();
        return true;
    }

    /// <summary>Removes what a dead daemon left; the caller holds the name's lock.</summary>
    internal void CleanUpClaimed(string name)
    {
        var record = Read(name);
        string mountPoint = record?.MountPoint ?? Paths.MountPoint(name);
        // By the mount table, not the folder: a dead FUSE root whose attributes were never cached cannot be stat()ed (ENOTCONN).
        if (Mount.IsMountPoint(mountPoint)) Mount.TryUnmount(mountPoint, lazy: true);
        if (record?.LoopNumber is { } loop && record.BackingFile is { } backing)
            LoopDevice.DetachIfBoundTo(loop, backing, StaleLoopWait);
        RemoveLinkIfPointsTo(Paths.LinkPath(name), record?.Device);
        if (record?.TurnedOnIoUring == true) Fuse.FuseUringSwitch.TurnOff(_ => { });   // the dead daemon's to undo
        try { Directory.Delete(mountPoint); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        try { File.Delete(Paths.ControlSocket(name)); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        try { if (Native.Libc.IsSocket(Paths.NbdSocket(name))) File.Delete(Paths.NbdSocket(name)); }   // only a socket: never a file a user put there
        catch (IOException) { } catch (UnauthorizedAccessException) { }
        Remove(name);
    }

    internal static void RemoveLinkIfPointsTo(string link, string? device)
    {
        var info = new FileInfo(link);
        if (info.LinkTarget is { } target && (device is null || target == device)) info.Delete();
    }

    /// <summary>
    /// Asks the daemon to shut down (SIGTERM), waits until it has let go of the name, and reads its outcome from
    /// the record. Refuses while the device is mounted. Returns a note for the user only when the image was
    /// flushed and closed cleanly; throws otherwise (a failed close, a daemon that died, a timeout).
    /// </summary>
    public string Detach(string name, TimeSpan timeout)
    {
        AttachName.Validate(name);
        if (!Directory.Exists(Paths.RunDirectory)) throw new AttachException($"no attachment named '{name}'");
        // Held until the outcome is read: list and attach leave the record alone meanwhile.
        var detaching = LifetimeLock.TryAcquire(Paths.DetachLockPath(name))
                        ?? throw new AttachException($"'{name}' is already being detached");
        try { return DetachHolding(name, timeout); }
        finally { detaching.ReleaseAndDelete(); }
    }

    private string DetachHolding(string name, TimeSpan timeout)
    {
        if (!IsAlive(name))
        {
            var ended = Read(name) ?? throw new AttachException($"no attachment named '{name}'");
            return Outcome(name, ended, ended.Pid, alreadyEnded: true);
        }
        var record = Read(name) ?? throw new AttachException($"'{name}' is still starting; try again");
        if (record.LoopNumber is { } loop && LoopDevice.IsClaimed(loop))
            throw new AttachException($"{record.Device} ('{name}') is in use, probably mounted; unmount it first");
        if (!ProcessControl.SendSignal(record.Pid, ProcessControl.SIGTERM))
            throw new AttachException($"cannot signal the daemon of '{name}' (pid {record.Pid})");

        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (IsAlive(name))
        {
            if (Environment.TickCount64 > deadline)
                throw new AttachException($"the daemon of '{name}' (pid {record.Pid}) did not exit within {timeout.TotalSeconds:0} s");
            Thread.Sleep(50);
        }
        return Outcome(name, Read(name), record.Pid, alreadyEnded: false);
    }

    /// <summary>The outcome the daemon wrote before it let go of the name; cleans up whatever it left.</summary>
    private string Outcome(string name, AttachRecord? left, int pid, bool alreadyEnded)
    {
        CleanUpIfStale(name);
        string log = $"see {Paths.LogPath(name)}";
        return left?.State switch
        {
            AttachState.Detached => alreadyEnded ? $"{name}: detached (its daemon had already shut down cleanly)" : $"{name}: detached",
            AttachState.Failed => throw new AttachException($"'{name}' did not shut down cleanly: {left.Error} ({log})"),
            // Nobody else removes a record while we hold NAME.detach: this is a daemon of an earlier version,
            // which removed its record instead of writing "detached" when it had shut down cleanly.
            null => $"{name}: detached",
            _ => throw new AttachException(alreadyEnded
                ? $"'{name}': the daemon (pid {pid}) had died without closing its image; cleaned up what it left ({log})"
                : $"'{name}' did not shut down cleanly: the daemon (pid {pid}) died before it closed its image ({log})"),
        };
    }
}
