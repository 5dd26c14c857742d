namespace CowDisk.Engine.Frontends.Attach;

/// <summary>Attachment names become file names and /dev/cowdisk/NAME, so they are kept to a safe alphabet.</summary>
public static class AttachName
{
    public const int MaxLength = 64;

    public static void Validate(string name)
    {
        bool valid = name.Length is > 0 and <= MaxLength && name[0] != '.' && name[0] != '-'
                     && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
        if (!valid)
            throw new AttachException($"invalid name '{name}': use 1-{MaxLength} letters, digits, '.', '_' or '-', not starting with '.' or '-'");
    }
}
