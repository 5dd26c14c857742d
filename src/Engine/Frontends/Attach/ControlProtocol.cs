using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using CowDisk.Engine.Snapshots;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>One request to a running attachment's control socket: a JSON line. Ops: snapshot-create, snapshot-list, snapshot-delete.</summary>
public sealed record ControlRequest(string Op, string? Name = null, string? Path = null, Guid? Id = null);

/// <summary>What a snapshot view needs besides the exported mappings.</summary>
public sealed record ExportedImage(int ClusterSize, long VirtualSize, string? Backing, string? DataDevice, Guid ImageId, uint Epoch);

/// <summary>The answer: a JSON line. Error is a one-line message when Ok is false.</summary>
public sealed record ControlReply(bool Ok, string? Error = null, SnapshotInfo? Snapshot = null, List<SnapshotInfo>? Snapshots = null,
    ExportedImage? Image = null, List<Images.MapRun>? Runs = null, List<long[]>? Ranges = null);

/// <summary>The control socket's JSON lines: kebab-case names, generated metadata (no reflection, for Native AOT).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower)]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlReply))]
internal sealed partial class ControlJsonContext : JsonSerializerContext;

/// <summary>The client side, used by the CLI: one request, one reply, per connection.</summary>
public static class ControlClient
{
    public static ControlReply Send(string socketPath, ControlRequest request, TimeSpan timeout)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.ReceiveTimeout = socket.SendTimeout = (int)timeout.TotalMilliseconds;
        try { socket.Connect(new UnixDomainSocketEndPoint(socketPath)); }
        catch (SocketException e) { throw new AttachException($"cannot reach the attachment's control socket {socketPath}: {e.Message}"); }
        using var stream = new NetworkStream(socket, ownsSocket: false);
        var line = JsonSerializer.Serialize(request, ControlJsonContext.Default.ControlRequest) + "\n";
        stream.Write(Encoding.UTF8.GetBytes(line));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string? answer;
        try { answer = reader.ReadLine(); }
        catch (IOException) { throw new AttachException($"the attachment did not answer on {socketPath} within {timeout.TotalSeconds:0} s"); }
        if (answer is null) throw new AttachException($"the attachment closed {socketPath} without answering");
        return JsonSerializer.Deserialize(answer, ControlJsonContext.Default.ControlReply) ?? throw new AttachException("empty answer from the attachment");
    }
}
