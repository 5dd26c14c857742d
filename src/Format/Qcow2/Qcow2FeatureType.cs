namespace CowDisk.Format.Qcow2;

/// <summary>Which header bitmask a feature name table entry names a bit of.</summary>
public enum Qcow2FeatureType : byte
{
    Incompatible = 0,
    Compatible = 1,
    Autoclear = 2,
}
