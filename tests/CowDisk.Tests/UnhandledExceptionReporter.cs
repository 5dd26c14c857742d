using System.Runtime.CompilerServices;

namespace CowDisk.Tests;

/// <summary>An exception that escapes a background thread ends the test host; this says which and where first.</summary>
internal static class UnhandledExceptionReporter
{
    [ModuleInitializer]
    internal static void Register() =>
        AppDomain.CurrentDomain.UnhandledException += (_, e) =>
            Console.Error.WriteLine($"unhandled exception on thread '{Thread.CurrentThread.Name}': {e.ExceptionObject}");
}
