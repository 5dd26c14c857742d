using System.CommandLine;
using CowDisk.Cli;
using CowDisk.Cli.Commands;

// convert: LiteDB's one-time set-up runs on another core while the command line is parsed and checked.
if (args.Length > 1 && args[0] == "convert") CowDisk.Engine.Convert.MetadataWarmUp.Start(args[1..]);
// IMAGE@SNAPSHOT of an image a running attachment writes is read through that attachment.
CowDisk.Engine.Frontends.Attach.HeldSnapshotViews.Install();
var root = new RootCommand("cowdisk: copy-on-write virtual disks (create, io, info, snapshot, check, map, diff, convert, serve, attach)");
root.Options.Add(GlobalOptions.Config);
root.Options.Add(GlobalOptions.Set);
root.Subcommands.Add(CreateCommand.Build());
root.Subcommands.Add(IoCommand.Build());
root.Subcommands.Add(InfoCommand.Build());
root.Subcommands.Add(SnapshotCommand.Build());
root.Subcommands.Add(InspectCommands.Check());
root.Subcommands.Add(InspectCommands.Map());
root.Subcommands.Add(InspectCommands.Diff());
root.Subcommands.Add(ServeCommand.Build());
root.Subcommands.Add(ConvertCommand.Build());
AttachCommands.Register(root);
// '@' starts snapshot names here, not response files; a mistyped command line is one line, not the help page.
var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
if (parsed.Errors.Count > 0)
{
    var names = new List<string>();
    for (var r = parsed.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
        if (r.Command != root) names.Insert(0, r.Command.Name);
    string where = string.Join(' ', names.Prepend("cowdisk"));
    // A mistyped word says what it was rather than what is then missing.
    var error = parsed.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parsed.Errors[0];
    Console.Error.WriteLine($"cowdisk: {GlobalOptions.OneLine(error.Message)} (try '{where} --help')");
    return 1;
}
return parsed.Invoke();
