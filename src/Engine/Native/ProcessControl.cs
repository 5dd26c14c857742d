using System.Runtime.InteropServices;

namespace CowDisk.Engine.Native;

/// <summary>Process-level calls: identity, sessions, signals, descriptor redirection, I/O-flusher marking.</summary>
internal static partial class ProcessControl
{
    public const int SIGKILL = 9, SIGTERM = 15;
    private const int PR_SET_IO_FLUSHER = 57;

    [LibraryImport("libc")]
    private static partial uint geteuid();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setsid();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int dup2(int oldFd, int newFd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    public static bool IsRoot => geteuid() == 0;

    /// <summary>Starts a new session so the daemon outlives the shell and terminal that started it.</summary>
    public static void StartNewSession() => setsid();

    public static bool SendSignal(int pid, int signal) => KillNative(pid, signal) == 0;

    public static bool IsAlive(int pid) => pid > 0 && (KillNative(pid, 0) == 0 || Marshal.GetLastPInvokeError() == Errno.EPERM);

    /// <summary>Points descriptors 0, 1 and 2 at the file (the daemon's log) once the starter stops listening.</summary>
    public static void RedirectStandardStreams(string inputPath, string outputPath)
    {
        int input = PosixFile.TryOpen(inputPath, PosixFile.O_RDONLY);
        int output = PosixFile.TryOpen(outputPath, PosixFile.O_WRONLY | PosixFile.O_CREAT | 0x400 /* O_APPEND */, 0x1A4);
        if (input < 0 || output < 0) throw new IOException($"cannot redirect standard streams to {outputPath}");
        dup2(input, 0);
        dup2(output, 1);
        dup2(output, 2);
        PosixFile.Close(input);
        PosixFile.Close(output);
    }

    /// <summary>
    /// Marks the calling thread as one that serves block I/O (PR_SET_IO_FLUSHER): its memory allocations do not
    /// wait on writeback of the very device it serves, which would deadlock. Best effort; false if refused.
    /// </summary>
    public static bool MarkThreadAsIoFlusher() => prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0;
}
