using CowDisk.Engine.Devices;

namespace CowDisk.Engine.Images;

/// <summary>Another process has the image open in a way that excludes this open (one writer per image).</summary>
public sealed class ImageLockedException(string message) : BlockDeviceException(message);

/// <summary>The request names something that is not a usable image (missing file, wrong kind, bad option).</summary>
public sealed class ImageOpenException(string message) : BlockDeviceException(message);
