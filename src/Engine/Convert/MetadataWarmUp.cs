using CowDisk.Engine.Images;
using CowDisk.Format.Image;
using LiteDB;
using LiteDB.Engine;

namespace CowDisk.Engine.Convert;

/// <summary>
/// LiteDB's first use in a process costs about 40 ms of one-time set-up (its expression parser, engine and
/// document types), paid where a conversion opens a cowdisk source or creates a cowdisk output. Started on
/// another core as the process starts, it overlaps the parsing and checking of the command line, and the real
/// open then finds it done. Only for conversions with a cowdisk side; of their files it reads only the first
/// bytes, to see whether one is a cowdisk image.
/// </summary>
public static class MetadataWarmUp
{
    /// <param name="args">convert's arguments: a warm-up is worth it when one is "cowdisk" (the output format) or names a cowdisk image.</param>
    public static void Start(IReadOnlyList<string> args) =>
        new Thread(() => Run(args)) { IsBackground = true, Name = "metadata warm-up" }.Start();

    private static void Run(IReadOnlyList<string> args)
    {
        try
        {
            if (!args.Any(a => a == BaseImage.CowDiskFormat || IsCowDisk(a))) return;
            using var db = new LiteDatabase(new LiteEngine(new LiteDB.Engine.EngineSettings
            {
                DataStream = new MemoryStream(), LogStream = new MemoryStream(),
            }), disposeOnClose: true);
            var documents = db.GetCollection("warm-up");
            documents.Upsert(new BsonDocument { ["_id"] = 1, ["v"] = new byte[8] });
            documents.FindById(1);
            documents.Find(Query.GT("_id", 0)).Count();
        }
        catch (Exception) { }   // only a warm-up: the real open reports whatever is wrong
    }

    /// <summary>Whether the argument names a regular file with a cowdisk header (a snapshot suffix stripped).</summary>
    private static bool IsCowDisk(string arg)
    {
        if (arg.StartsWith('-')) return false;
        string path = ImageRef.Parse(arg).Path;
        if (path.Length == 0 || !Native.HostFile.IsRegularFile(path)) return false;   // never opens a FIFO
        Span<byte> magic = stackalloc byte[8];
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return RandomAccess.Read(file, magic, 0) == magic.Length && magic.SequenceEqual(ImageHeader.Magic);
    }
}
