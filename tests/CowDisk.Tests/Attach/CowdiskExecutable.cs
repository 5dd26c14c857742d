namespace CowDisk.Tests.Attach;

/// <summary>
/// The real built `cowdisk` executable: COWDISK_TEST_EXECUTABLE when set (scripts/test.sh sets it to the build
/// scripts/install.sh makes, so the tests run what a user installs), else the one beside the test assembly's build tree.
/// </summary>
public static class CowdiskExecutable
{
    private static readonly Lazy<string> Located = new(Locate);

    public static string Path => Located.Value;

    public static CommandRunner.Result Run(params string[] arguments) => CommandRunner.Run(Path, arguments);

    private static string Locate()
    {
        if (Environment.GetEnvironmentVariable("COWDISK_TEST_EXECUTABLE") is { Length: > 0 } given)
            return File.Exists(given) ? System.IO.Path.GetFullPath(given) : throw new FileNotFoundException($"COWDISK_TEST_EXECUTABLE={given} does not exist");
        // tests/CowDisk.Tests/bin/<config>/net10.0/ → src/Cli/bin/<config>/net10.0/cowdisk
        var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string framework = testBin.Name, configuration = testBin.Parent!.Name;
        var repository = testBin.Parent.Parent!.Parent!.Parent!.Parent!;
        string[] candidates =
        [
            System.IO.Path.Combine(repository.FullName, "src", "Cli", "bin", configuration, framework, "cowdisk"),
            System.IO.Path.Combine(AppContext.BaseDirectory, "cowdisk"),
        ];
        return candidates.FirstOrDefault(File.Exists)
               ?? throw new FileNotFoundException($"cowdisk executable not found; looked at {string.Join(", ", candidates)}");
    }
}
