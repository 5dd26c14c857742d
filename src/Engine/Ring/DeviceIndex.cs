namespace CowDisk.Engine.Ring;

/// <summary>Device indices in MAP_BLOCK_RSP.</summary>
internal static class DeviceIndex
{
    public const ushort Data = 0;
    public const ushort Base = 1;
}
