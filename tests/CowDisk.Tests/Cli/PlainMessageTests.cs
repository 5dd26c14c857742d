using CowDisk.Cli;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>Odd paths get a plain one-line reason, not a .NET message or a misleading one.</summary>
public class PlainMessageTests
{
    private static CommandRunner.Result Cow(params string[] args) => CowdiskExecutable.Run(args);

    [Fact]
    public void A_folder_named_as_the_image_is_called_a_folder()
    {
        using var dir = new TempDir();
        string folder = Directory.CreateDirectory(dir.File("disk.img")).FullName;
        CliAssert.OneLineError(Cow("create", folder, "--size", "1M"), $"image {folder} is a folder, not an image");
        CliAssert.OneLineError(Cow("create", folder, "--size", "1M", "--force"), "is a folder");
        CliAssert.OneLineError(Cow("io", folder, "write", "0", "4K"), "is a folder");
        CliAssert.OneLineError(Cow("io", folder, "read", "0", "4K"), "is a folder");
        CliAssert.OneLineError(Cow("info", folder), "is a folder");
        Assert.Empty(Directory.GetFileSystemEntries(folder));
        Assert.Single(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("Engine:DirectIo=maybe", "bad setting Engine:DirectIo: ")]
    [InlineData("Engine:RingSlots=many", "bad setting Engine:RingSlots: ")]
    public void A_setting_of_the_wrong_type_is_named(string setting, string shown)
    {
        using var dir = new TempDir();
        CliAssert.OneLineError(Cow("--set", setting, "create", dir.File("disk.img"), "--size", "1M"), shown);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void A_base_or_metadata_file_replaced_by_a_folder_is_called_a_folder()
    {
        using var dir = new TempDir();
        string raw = dir.File("b.raw"), img = dir.File("o.img");
        File.WriteAllBytes(raw, new byte[1 << 20]);
        Assert.Equal(0, Cow("create", img, "--backing", "b.raw", "--backing-format", "raw").ExitCode);
        File.Delete(raw);
        Directory.CreateDirectory(raw);
        CliAssert.OneLineError(Cow("io", img, "read", "0", "4K"), $"backing file {raw} of {img} is a folder, not an image");

        string other = dir.File("m.img");
        Assert.Equal(0, Cow("create", other, "--size", "1M").ExitCode);
        File.Delete(other + ".meta.db");
        Directory.CreateDirectory(other + ".meta.db");
        CliAssert.OneLineError(Cow("io", other, "read", "0", "4K"), $"metadata file {other}.meta.db is a folder");
    }

    [Fact]
    public void Attach_settings_are_checked_with_io_uring_asked_too()
    {
        using var dir = new TempDir();   // refused before the image is even looked at
        string image = dir.File("none.img");
        CliAssert.OneLineError(Cow("--set", "Attach:IoUring=perhaps", "attach", image, "--name", "plain"), "bad setting Attach:IoUring: ");
        CliAssert.OneLineError(Cow("--set", "Attach:Foo=1", "attach", image, "--name", "plain", "--io-uring"), "unknown setting Attach:Foo");
    }

    [Theory]
    [InlineData("/", "backing file / is a folder, not an image")]
    [InlineData("/dev/null", "backing file /dev/null is not a regular file, so not a usable image")]
    [InlineData("/dev/zero", "not a usable image")]
    [InlineData("empty.raw", "is empty (0 bytes), so not a usable image")]
    [InlineData("dangling.raw", "dangling.raw does not exist")]
    public void A_backing_that_is_no_image_is_named_for_what_it_is(string backing, string fragment)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("empty.raw"), []);
        File.CreateSymbolicLink(dir.File("dangling.raw"), dir.File("nowhere.raw"));
        CliAssert.OneLineError(Cow("create", dir.File("top.img"), "--backing", backing), fragment);
        CliAssert.OneLineError(Cow("create", dir.File("top.img"), "--backing", backing, "--size", "1M"), fragment);
        Assert.Equal(["dangling.raw", "empty.raw"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void A_data_file_with_a_garbage_header_beside_its_metadata_is_a_damaged_image_not_raw()
    {
        using var dir = new TempDir();
        string img = dir.File("d.img");
        Assert.Equal(0, Cow("create", img, "--size", "1M").ExitCode);
        var data = File.ReadAllBytes(img);
        Array.Fill(data, (byte)0x5c, 0, 512);
        File.WriteAllBytes(img, data);
        CliAssert.OneLineError(Cow("info", img), $"{img} is a damaged cowdisk image");
        CliAssert.OneLineError(Cow("info", img, "--output", "json"), "bad magic");
        CliAssert.OneLineError(Cow("create", dir.File("top.img"), "--backing", "d.img"), "damaged cowdisk image");
        Assert.False(File.Exists(dir.File("top.img")));

        File.Delete(img + ".meta.db");   // without metadata beside it, a file of any content is a raw image
        Assert.Contains("file format: raw", Cow("info", img).Output);
    }

    [Theory]
    [InlineData("cannot open /x/a.img: Read-only file system : '/x/a.img'", "cannot open /x/a.img: Read-only file system")]
    [InlineData("Too many levels of symbolic links : '/x/loop'", "Too many levels of symbolic links (/x/loop)")]
    [InlineData("image /x/a.img does not exist", "image /x/a.img does not exist")]
    [InlineData("two\nlines", "two lines")]
    public void System_errors_name_their_path_once(string message, string shown) =>
        Assert.Equal(shown, GlobalOptions.OneLine(message));

    [Fact]
    public void An_unexpected_exception_is_one_line_not_a_stack_trace()
    {
        var original = Console.Error;
        var captured = new StringWriter();
        Console.SetError(captured);
        int code;
        try { code = GlobalOptions.Run(() => throw new InvalidOperationException("Write lock may not be acquired\nwith read lock held")); }
        finally { Console.SetError(original); }
        Assert.Equal(70, code);
        Assert.Contains("cowdisk: unexpected InvalidOperationException: Write lock may not be acquired with read lock held (a bug; COWDISK_DEBUG=1 shows where)", captured.ToString());
    }
}
