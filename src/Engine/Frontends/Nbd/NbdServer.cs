using System.Net;
using System.Net.Sockets;
using CowDisk.Format.Nbd;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>
/// An NBD server (fixed newstyle, structured replies, block status, STARTTLS) for one or more exports, on a
/// Unix socket and/or a TCP address. Start, then Stop: in-flight requests are answered before connections close.
/// The devices stay open; the caller flushes and closes them after Stop.
/// </summary>
public sealed class NbdServer : IDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);
    private const int SolSocket = 1, SoReuseAddr = 2;   // Linux values
    private const int UnixSendBuffer = 1 << 20;

    private readonly NbdServerOptions _options;
    private readonly List<Socket> _listeners = [];
    private readonly List<Thread> _acceptors = [];
    private readonly HashSet<NbdConnection> _connections = [];
    private bool _stopping;
    /// <summary>This server created the Unix socket (only then may Stop remove it).</summary>
    private bool _boundUnix;

    /// <summary>Payload buffers; keeps what 2 clients' full in-flight budgets use, beyond that the GC takes them back.</summary>
    internal NbdBufferPool Buffers { get; } = new(NbdLimits.MaxPayload, 128L << 20);
    internal NbdWorkers Workers { get; }

    /// <summary>Where clients connect, one URI per export: nbd+unix:///NAME?socket=PATH or nbd://HOST:PORT/NAME (nbds… with TLS).</summary>
    public IReadOnlyList<string> Addresses => _addresses;
    private readonly List<string> _addresses = [];
    public IPEndPoint? TcpEndPoint { get; private set; }

    public NbdServer(NbdServerOptions options)
    {
        if (options.Exports.Count == 0) throw new ArgumentException("an NBD server needs at least one export");
        if (options.Exports.Select(e => e.Name).Distinct().Count() != options.Exports.Count) throw new ArgumentException("export names must differ");
        if (options.UnixSocket is null && options.Tcp is null) throw new ArgumentException("give a Unix socket or a TCP address to listen on");
        if (options.RequireTls && options.TlsCertificate is null) throw new ArgumentException("TLS is required but no certificate was given");
        _options = options;
        Workers = new NbdWorkers(options.Workers);
    }

    public void Start()
    {
        try
        {
            if (_options.UnixSocket is { } path) ListenUnix(path);
            if (_options.Tcp is { } endPoint) ListenTcp(endPoint);
        }
        catch
        {
            Stop();
            throw;
        }
    }

    private void ListenUnix(string path)
    {
        // A socket left by a server that died is replaced; anything else at the path is not ours to delete.
        if (File.Exists(path) || Directory.Exists(path))
        {
            if ((File.GetAttributes(path) & FileAttributes.Directory) != 0 || !Native.Libc.IsSocket(path))
                throw new IOException($"{path} exists and is not a socket");
            if (IsListening(path)) throw new IOException($"{path} is in use by another server");
            File.Delete(path);
        }
        string? folder = Path.GetDirectoryName(path);
        if (folder is null || !Directory.Exists(folder)) throw new IOException($"cannot create the socket {path}: its folder does not exist");
        // The kernel's limit for a socket path (sun_path) is 108 bytes with the terminating zero.
        if (System.Text.Encoding.UTF8.GetByteCount(path) > 107) throw new IOException($"the socket path {path} is too long (at most 107 bytes); choose a shorter --socket");
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            // Created owner-only (umask 0177) before anyone can connect: the umask would otherwise decide who may.
            var old = Native.Libc.umask(0x7F);
            try { socket.Bind(new UnixDomainSocketEndPoint(path)); }
            finally { Native.Libc.umask(old); }
            _boundUnix = true;
            socket.Listen(64);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"cannot listen on {path}: {e.Message}", e);
        }
        AddListener(socket, $"unix:{path}");
        foreach (var export in _options.Exports)
            _addresses.Add($"{(_options.RequireTls ? "nbds+unix" : "nbd+unix")}:///{export.Name}?socket={path}");
    }


    private static bool IsListening(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { probe.Connect(new UnixDomainSocketEndPoint(path)); return true; }
        catch (SocketException) { return false; }
    }

    private void ListenTcp(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // SO_REUSEADDR alone (a restart may bind while old connections linger in TIME_WAIT). Not .NET's
            // ReuseAddress option: on Linux that sets SO_REUSEPORT too, which lets a second server share the port.
            Span<byte> on = stackalloc byte[4];
            int one = 1;
            System.Runtime.InteropServices.MemoryMarshal.Write(on, in one);   // an int in host byte order, as setsockopt takes it
            if (OperatingSystem.IsLinux()) socket.SetRawSocketOption(SolSocket, SoReuseAddr, on);
            socket.Bind(endPoint);
            socket.Listen(64);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"cannot listen on {endPoint}: {e.Message}", e);
        }
        TcpEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        AddListener(socket, TcpEndPoint.ToString());
        string host = TcpEndPoint.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{TcpEndPoint.Address}]" : TcpEndPoint.Address.ToString();
        foreach (var export in _options.Exports)
            _addresses.Add($"{(_options.RequireTls ? "nbds" : "nbd")}://{host}:{TcpEndPoint.Port}/{export.Name}");
    }

    private void AddListener(Socket socket, string where)
    {
        _listeners.Add(socket);
        var thread = new Thread(() => Accept(socket, where)) { IsBackground = true, Name = $"nbd accept {where}" };
        _acceptors.Add(thread);
        thread.Start();
    }

    private void Accept(Socket listener, string where)
    {
        while (true)
        {
            Socket client;
            try { client = listener.Accept(); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; }   // closed by Stop
            string peer = client.RemoteEndPoint is IPEndPoint ip ? ip.ToString() : where;
            if (client.ProtocolType == ProtocolType.Tcp) client.NoDelay = true;   // replies are gathered into full sends already
            // A Unix socket's default send buffer (208 KiB) is less than one 256 KiB read reply: the writer would
            // block and be woken again for every reply (the kernel caps it at net.core.wmem_max). TCP sizes its buffers itself.
            else client.SendBufferSize = UnixSendBuffer;
            var connection = new NbdConnection(this, client, _options, peer);
            lock (_connections)
            {
                if (_stopping || _connections.Count >= _options.MaxConnections)
                {
                    _options.Log($"nbd: {peer}: refused ({(_stopping ? "shutting down" : $"{_options.MaxConnections} connections already")})");
                    client.Dispose();
                    continue;
                }
                _connections.Add(connection);
            }
            connection.Start();
        }
    }

    internal void Forget(NbdConnection connection)
    {
        lock (_connections)
        {
            _connections.Remove(connection);
            Monitor.PulseAll(_connections);
        }
    }

    public int ConnectionCount
    {
        get { lock (_connections) return _connections.Count; }
    }

    /// <summary>
    /// Stops accepting, lets every connection finish the requests it has in flight (new ones are not read), then
    /// closes them; after a grace period stragglers (clients not reading their replies) are cut off.
    /// </summary>
    public void Stop()
    {
        List<NbdConnection> open;
        lock (_connections)
        {
            if (_stopping && _connections.Count == 0 && _listeners.Count == 0) return;
            _stopping = true;
            open = [.. _connections];
        }
        foreach (var listener in _listeners) listener.Dispose();
        foreach (var thread in _acceptors) thread.Join();
        _listeners.Clear();
        _acceptors.Clear();
        if (_boundUnix && _options.UnixSocket is { } path && Native.Libc.IsSocket(path)) File.Delete(path);   // never another server's socket
        _boundUnix = false;

        foreach (var connection in open) connection.StopReading();
        long deadline = Environment.TickCount64 + (long)StopGrace.TotalMilliseconds;
        lock (_connections)
        {
            while (_connections.Count > 0 && Environment.TickCount64 < deadline)
                Monitor.Wait(_connections, TimeSpan.FromMilliseconds(100));
            open = [.. _connections];
        }
        foreach (var connection in open) connection.Abort();
        foreach (var connection in open) connection.Reader.Join();
        Workers.Dispose();   // whatever was queued has run: no request touches a device after this
    }

    public void Dispose() => Stop();
}
