namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>
/// The kernel's switch for FUSE over io_uring (/sys/module/fuse/parameters/enable_uring, off by default). It is
/// read at a connection's INIT, so it must be on before mounting; a connection that started on io_uring keeps it
/// when the switch goes off again. Turned on only when asked, and turned back off only by whoever turned it on.
/// </summary>
internal static class FuseUringSwitch
{
    /// <summary>The switch; COWDISK_FUSE_URING_SWITCH names another file (tests use it to play a kernel without the switch).</summary>
    public static string ParameterPath =>
        Environment.GetEnvironmentVariable("COWDISK_FUSE_URING_SWITCH") is { Length: > 0 } other ? other : "/sys/module/fuse/parameters/enable_uring";

    /// <summary>Why FUSE over io_uring cannot be had here, or null when the switch is on.</summary>
    public static string? Unavailable()
    {
        if (!File.Exists(ParameterPath)) return $"this kernel has no FUSE over io_uring (no {ParameterPath})";
        return IsOn() ? null : $"{ParameterPath} is off";
    }

    private static bool IsOn()
    {
        try { return File.ReadAllText(ParameterPath).Trim() is "Y" or "1"; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Turns the switch on if it is off; true when this call changed it (so the caller turns it back off).</summary>
    public static bool TurnOn(Action<string> log)
    {
        if (!File.Exists(ParameterPath) || IsOn()) return false;
        try
        {
            File.WriteAllText(ParameterPath, "Y");
            log($"fuse: turned on FUSE over io_uring ({ParameterPath}); it goes back off when this attachment ends");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log($"fuse: cannot turn on {ParameterPath}: {e.Message}");
            return false;
        }
    }

    public static void TurnOff(Action<string> log)
    {
        try { File.WriteAllText(ParameterPath, "N"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log($"fuse: cannot turn {ParameterPath} back off: {e.Message}"); }
    }
}
