namespace CowDisk.Engine.Convert;

/// <summary>Temporary names beside a destination: the output is built there and renamed when complete.</summary>
internal static class Staging
{
    public static string PathFor(string destination) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(destination))!, $".{Path.GetFileName(destination)}.convert-{Environment.ProcessId}");
}
