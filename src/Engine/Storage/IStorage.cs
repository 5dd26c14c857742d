namespace CowDisk.Engine.Storage;

public enum StorageAccess { Read, ReadWrite }

/// <summary>
/// Where an image's files live: opening, creating, renaming and deleting them, and the folder barrier those
/// need. Paths are absolute. Production: <see cref="HostStorage"/>; tests add a power-loss simulator.
/// </summary>
public interface IStorage
{
    bool Exists(string path);

    IStorageFile Open(string path, StorageAccess access);

    /// <summary>A raw block device for extents; a writer holds it exclusively. Its length is fixed.</summary>
    IStorageFile OpenDevice(string path, StorageAccess access);

    /// <summary>Creates a new empty file; fails if the name exists. Its name lasts only after <see cref="SyncFolder"/>.</summary>
    IStorageFile Create(string path);

    /// <summary>Removes the name if it exists. Lasts only after <see cref="SyncFolder"/>.</summary>
    void Delete(string path);

    void Rename(string from, string to);

    /// <summary>Durability barrier for names: creates, renames and deletes in the folder survive power loss.</summary>
    void SyncFolder(string folder);
}
