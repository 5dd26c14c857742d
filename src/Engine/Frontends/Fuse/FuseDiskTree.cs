using System.Text;
using CowDisk.Format.Fuse;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>The whole file system the server shows: a root folder holding one regular file, the disk.</summary>
internal sealed class FuseDiskTree
{
    public const ulong RootNode = 1;
    public const ulong DiskNode = 2;
    /// <summary>Attributes never change behind the kernel's back, so it may cache them for long.</summary>
    public const ulong AttributeLifetimeSeconds = 3600;
    public const uint BlockSize = 4096;

    private readonly byte[] _diskName;

    public FuseAttr RootAttributes { get; }
    public FuseAttr DiskAttributes { get; }
    public ReadOnlySpan<byte> DiskName => _diskName;

    public FuseDiskTree(string fileName, long size, bool readOnly)
    {
        _diskName = Encoding.UTF8.GetBytes(fileName);
        ulong now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        RootAttributes = new FuseAttr(RootNode, 0, 0, now, now, now, 0, 0, 0,
            FuseAttr.DirectoryType | 0x1ED /* 0755 */, 2, 0, 0, 0, BlockSize, 0);
        DiskAttributes = new FuseAttr(DiskNode, (ulong)size, (ulong)size / 512, now, now, now, 0, 0, 0,
            FuseAttr.RegularFileType | (readOnly ? 0x100u /* 0400 */ : 0x180u /* 0600 */), 1, 0, 0, 0, BlockSize, 0);
    }

    /// <summary>The attributes of a node, or null for a node id we never handed out.</summary>
    public FuseAttr? AttributesOf(ulong node) => node switch
    {
        RootNode => RootAttributes,
        DiskNode => DiskAttributes,
        _ => null,
    };
}
