namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>A metadata context a client selected: its id on this connection and what it reports.</summary>
/// <param name="Bitmap">For qemu:dirty-bitmap:NAME, the snapshot NAME; null for base:allocation.</param>
internal sealed record NbdMetaContext(uint Id, string Name, string? Bitmap)
{
    public const string Allocation = "base:allocation";
    public const string DirtyBitmapPrefix = "qemu:dirty-bitmap:";

    /// <summary>
    /// The contexts of export that match query: exact names for SET; for LIST also a namespace ("base:",
    /// "qemu:") or an empty leaf ("qemu:dirty-bitmap:") meaning all of them. Unknown namespaces match nothing.
    /// </summary>
    public static IEnumerable<string> Matching(NbdExport export, string query, bool listing)
    {
        if (query == Allocation || (listing && query == "base:")) yield return Allocation;
        else if (query.StartsWith(DirtyBitmapPrefix, StringComparison.Ordinal) || (listing && query == "qemu:"))
        {
            string leaf = query.Length > DirtyBitmapPrefix.Length ? query[DirtyBitmapPrefix.Length..] : "";
            foreach (string bitmap in export.DirtyBitmaps())
                if ((listing && leaf.Length == 0) || bitmap == leaf) yield return DirtyBitmapPrefix + bitmap;
        }
    }

    /// <summary>Every context the export offers (a LIST with no queries).</summary>
    public static IEnumerable<string> All(NbdExport export) =>
        new[] { Allocation }.Concat(export.DirtyBitmaps().Select(b => DirtyBitmapPrefix + b));
}
