using System.CommandLine;
using CowDisk.Cli;
using CowDisk.Cli.Commands;

// IMAGE@SNAPSHOT of an image a running attachment writes is read through that attachment.
CowDisk.Engine.Frontends.Attach.HeldSnapshotViews.Install();
var root = new RootCommand("cowdisk: copy-on-write virtual disks (create, io, info, snapshot, check, map, diff, attach)");
root.Options.Add(GlobalOptions.Config);
root.Options.Add(GlobalOptions.Set);
root.Subcommands.Add(CreateCommand.Build());
root.Subcommands.Add(IoCommand.Build());
root.Subcommands.Add(InfoCommand.Build());
root.Subcommands.Add(SnapshotCommand.Build());
root.Subcommands.Add(InspectCommands.Check());
root.Subcommands.Add(InspectCommands.Map());
root.Subcommands.Add(InspectCommands.Diff());
AttachCommands.Register(root);
return root.Parse(args).Invoke();
