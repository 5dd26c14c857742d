using System.Security.Cryptography;
using CowDisk.Tests.Attach;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>What every refusal of the CLI must look like, and a fingerprint to prove nothing changed.</summary>
public static class CliAssert
{
    public static void OneLineError(CommandRunner.Result r, string fragment)
    {
        Assert.True(r.ExitCode != 0, $"expected a failure: {r}");
        Assert.Contains(fragment, r.Error);
        Assert.Single(r.Error.Trim().Split('\n'));
        Assert.StartsWith("cowdisk: ", r.Error);
    }

    /// <summary>SHA-256 of each existing file, concatenated: equal before and after means untouched.</summary>
    public static string Fingerprint(params string[] paths) =>
        string.Concat(paths.Where(File.Exists).Select(p => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(p)))));

    /// <summary>Runs a shell line, for pipes into the CLI; $COWDISK is the executable.</summary>
    public static CommandRunner.Result Shell(string line) =>
        CommandRunner.Run("sh", ["-c", line], environment: new Dictionary<string, string> { ["COWDISK"] = CowdiskExecutable.Path });
}
