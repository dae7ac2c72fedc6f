using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace SharedRuntime.Http.Relay;

/// <summary>
/// The event loops that drive the relay's sockets (clients and app connections): by default one thread for every two
/// cores (<see cref="DefaultCount"/>), each waiting on its own epoll set. An operation is tried on the socket at once only while
/// the socket is known to be ready; otherwise it waits for the loop's word that it is, and then runs, with the code
/// awaiting it, on the loop's thread. A relayed call thus goes from the client's request to the app and from the app's
/// answer to the client without a hand-off between threads or a read that finds nothing.
/// </summary>
internal sealed class SocketLoops
{
    public const int MaxLoops = 64;
    private static int s_configured;
    private static readonly Lazy<SocketLoops> s_shared = new(() => new SocketLoops(s_configured > 0 ? s_configured : DefaultCount));

    /// <summary>
    /// One loop for every two cores (rounded up), at most 16. Every relayed call costs the apps at either end at least the
    /// relay's CPU again, and they run on the same node: loops for more than half its cores would wait for apps that
    /// cannot keep up, while each extra loop splits the connections that one could serve on one thread (measured on
    /// 2 cores: one loop against two, the same throughput with a p99 about 15% lower).
    /// </summary>
    public static int DefaultCount => Math.Clamp((Environment.ProcessorCount + 1) / 2, 1, 16);

    /// <summary>
    /// Sets the number of loops (<c>--relay-loops</c>); 0 for <see cref="DefaultCount"/>. Only before the loops start:
    /// they are the process's, made on first use, and a later call leaves them as they are.
    /// </summary>
    public static void Configure(int count) => s_configured = Math.Clamp(count, 0, MaxLoops);

    private readonly SocketLoop[] _loops;
    private int _next;

    private SocketLoops(int count)
    {
        _loops = new SocketLoop[count];
        for (var i = 0; i < count; i++)
        {
            _loops[i] = new SocketLoop(i);
        }
    }

    public static SocketLoops Shared => s_shared.Value;

    /// <summary>
    /// Puts a socket on <paramref name="on"/>, or on the loops in turn. <paramref name="writable"/> false when it is still
    /// connecting: the first wait for <see cref="LoopSocket.WaitWritableAsync"/> then lasts until the connection is made
    /// or fails.
    /// </summary>
    public LoopSocket Add(Socket socket, bool writable = true, SocketLoop? on = null)
    {
        var loop = on ?? _loops[(uint)Interlocked.Increment(ref _next) % (uint)_loops.Length];
        return loop.Add(socket, writable);
    }
}

/// <summary>One epoll set and the thread waiting on it.</summary>
internal sealed class SocketLoop
{
    private const uint EpollIn = 0x001, EpollOut = 0x004, EpollErr = 0x008, EpollHup = 0x010, EpollRdHup = 0x2000, EpollEt = 1u << 31;
    private const int EpollCtlAdd = 1, EpollCtlDel = 2;
    private const int EventsPerWait = 256;
    private const int Interrupted = 4; // EINTR

    /// <summary>epoll_event is packed (12 bytes) on x86-64 and naturally aligned (16 bytes) elsewhere.</summary>
    private static readonly int s_eventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
    private static readonly int s_dataOffset = s_eventSize - 8;
    private readonly int _epoll;

    /// <summary>
    /// The sockets on the loop, by slot: an event names its socket by slot and generation (the low and high halves of its
    /// id), so a late event for a socket gone finds nothing instead of the slot's next socket.
    /// </summary>
    private LoopSocket?[] _slots = new LoopSocket?[64];
    private readonly Stack<int> _free = new();
    private int _used;
    private uint _generation;

    public SocketLoop(int index)
    {
        _epoll = EpollCreate(0x80000); // EPOLL_CLOEXEC
        if (_epoll < 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }
        new Thread(Run) { IsBackground = true, Name = $"relay loop {index}" }.Start();
    }

    public LoopSocket Add(Socket socket, bool writable)
    {
        socket.Blocking = false;
        LoopSocket added;
        lock (_free)
        {
            if (!_free.TryPop(out var slot))
            {
                slot = _used++;
                if (slot == _slots.Length)
                {
                    var grown = new LoopSocket?[_slots.Length * 2];
                    _slots.CopyTo(grown, 0);
                    Volatile.Write(ref _slots, grown);
                }
            }
            added = new LoopSocket(socket, this, (long)++_generation << 32 | (uint)slot, writable);
            Volatile.Write(ref _slots[slot], added);
        }
        if (Control(EpollCtlAdd, socket, EpollIn | EpollOut | EpollRdHup | EpollEt, added.Id) != 0)
        {
            var error = Marshal.GetLastPInvokeError();
            Remove(added, unregister: false);
            throw new SocketException(error);
        }
        return added;
    }

    private LoopSocket? Find(long id)
    {
        var slots = Volatile.Read(ref _slots);
        var slot = (int)(uint)id;
        var socket = slot < slots.Length ? Volatile.Read(ref slots[slot]) : null;
        return socket?.Id == id ? socket : null;
    }

    /// <summary>Takes a socket off the loop; with <paramref name="unregister"/>, also out of the epoll set (it stays open).</summary>
    public void Remove(LoopSocket socket, bool unregister)
    {
        if (unregister)
        {
            Control(EpollCtlDel, socket.Socket, 0, socket.Id);
        }
        lock (_free)
        {
            var slot = (int)(uint)socket.Id;
            if (_slots[slot] == socket)
            {
                _slots[slot] = null;
                _free.Push(slot);
            }
        }
    }

    private int Control(int operation, Socket socket, uint events, long id)
    {
        Span<ulong> space = stackalloc ulong[2];
        var bytes = MemoryMarshal.AsBytes(space);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, events);
        BinaryPrimitives.WriteInt64LittleEndian(bytes[s_dataOffset..], id);
        var handle = socket.SafeHandle;
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return EpollControl(_epoll, operation, (int)handle.DangerousGetHandle(), ref space[0]);
        }
        catch (ObjectDisposedException)
        {
            return -1;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private void Run()
    {
        var events = GC.AllocateArray<byte>(EventsPerWait * s_eventSize, pinned: true);
        while (true)
        {
            var count = EpollWait(_epoll, events, EventsPerWait, -1);
            if (count < 0)
            {
                if (Marshal.GetLastPInvokeError() == Interrupted)
                {
                    continue;
                }
                throw new SocketException(Marshal.GetLastPInvokeError());
            }
            t_handling = this;
            for (var i = 0; i < count; i++)
            {
                var entry = events.AsSpan(i * s_eventSize, s_eventSize);
                var id = BinaryPrimitives.ReadInt64LittleEndian(entry[s_dataOffset..]);
                if (Find(id) is not { } socket)
                {
                    continue;
                }
                var flags = BinaryPrimitives.ReadUInt32LittleEndian(entry);
                try
                {
                    socket.OnEvents(
                        readable: (flags & (EpollIn | EpollErr | EpollHup | EpollRdHup)) != 0,
                        writable: (flags & (EpollOut | EpollErr | EpollHup)) != 0,
                        ended: (flags & (EpollErr | EpollHup | EpollRdHup)) != 0);
                }
                catch (Exception)
                {
                    // What ran for this socket failed in a way its own code did not catch: that one connection is
                    // closed, and the loop goes on for the others.
                    socket.Abort();
                }
            }
            t_handling = null;
            RunDeferred();
        }
    }

    /// <summary>The loop whose batch of events this thread is handling now, if any.</summary>
    [ThreadStatic]
    private static SocketLoop? t_handling;

    /// <summary>True on the loop's own thread while it handles a batch of events.</summary>
    public bool Handling => t_handling == this;

    private readonly List<(Action<object> Action, object State)> _deferred = [];

    /// <summary>
    /// Runs <paramref name="action"/> once the loop has handled the rest of the batch of events it is handling, when called
    /// from its thread while it does; false (and nothing is kept) otherwise. Writes to a connection many calls share
    /// then go out together, as an event-driven proxy's do.
    /// </summary>
    public static bool TryDefer(Action<object> action, object state)
    {
        if (t_handling is not { } loop)
        {
            return false;
        }
        loop._deferred.Add((action, state));
        return true;
    }

    private void RunDeferred()
    {
        // What a deferred action starts runs now, without deferring (the batch is over).
        for (var i = 0; i < _deferred.Count; i++)
        {
            var (action, state) = _deferred[i];
            try
            {
                action(state);
            }
            catch (Exception)
            {
                // Each action handles its own failures (a connection's write fails the connection).
            }
        }
        _deferred.Clear();
    }

    [DllImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    private static extern int EpollCreate(int flags);

    [DllImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static extern int EpollControl(int epoll, int operation, int descriptor, ref ulong @event);

    [DllImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    private static extern int EpollWait(int epoll, [Out] byte[] events, int count, int timeout);
}

/// <summary>
/// A non-blocking socket driven by a <see cref="SocketLoop"/>: at most one receive, one send and one wait for
/// readability pending at a time. Close it with <see cref="Abort"/> (which fails what is pending) or take it off the
/// loop with <see cref="Detach"/>; disposing the <see cref="Socket"/> directly would leave a pending operation waiting.
/// </summary>
internal sealed class LoopSocket
{
    private readonly Lock _lock = new();
    private readonly SocketLoop _loop;
    private readonly LoopOperation _receive = new(), _send = new(), _readable = new(), _writableWait = new();
    private bool _mayRead = true, _mayWrite;

    /// <summary>The peer closed (or the connection failed): whatever a read finds, a later one still has an answer at once.</summary>
    private bool _ended;
    private bool _closed;

    public LoopSocket(Socket socket, SocketLoop loop, long id, bool writable)
    {
        Socket = socket;
        _loop = loop;
        Id = id;
        _mayWrite = writable;
    }

    public Socket Socket { get; }

    public long Id { get; }

    /// <summary>
    /// The loop whose thread drives this socket. A call keeps the caller's socket and the app's on one loop: it then
    /// runs on one thread from request to answer, with no other core touching its state.
    /// </summary>
    public SocketLoop Loop => _loop;

    /// <summary>Receives what is there into <paramref name="buffer"/>, waiting for the first byte: 0 when the peer closed.</summary>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (_mayRead)
            {
                var received = Socket.Receive(buffer.Span, SocketFlags.None, out var error);
                if (error == SocketError.Success)
                {
                    NoteReceived(received, buffer.Length);
                    return new ValueTask<int>(received);
                }
                if (error != SocketError.WouldBlock)
                {
                    throw new SocketException((int)error);
                }
                _mayRead = false;
            }
            return _receive.Start(buffer);
        }
    }

    /// <summary>Sends all of <paramref name="data"/>, waiting while the socket's send buffer is full.</summary>
    public ValueTask<int> SendAsync(ReadOnlyMemory<byte> data)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (_mayWrite && _loop.Handling)
            {
                // Sent at the end of the loop's batch of events, with the batch's other writes: the peers (an app, a
                // caller) then get them close together and take them in one wake-up each, as an event-driven proxy's are.
                var held = _send.Start(data, 0);
                SocketLoop.TryDefer(static state => ((LoopSocket)state).SendHeld(), this);
                return held;
            }
            var sent = 0;
            if (_mayWrite && !TrySend(data.Span, ref sent, out var error))
            {
                throw new SocketException((int)error);
            }
            return sent == data.Length ? new ValueTask<int>(sent) : _send.Start(data, sent);
        }
    }

    /// <summary>Waits until the socket has something to read (or the peer closed); receives nothing.</summary>
    public ValueTask<int> WaitReadableAsync()
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (_mayRead)
            {
                Span<byte> one = stackalloc byte[1];
                var peeked = Socket.Receive(one, SocketFlags.Peek, out var error);
                if (error != SocketError.WouldBlock)
                {
                    return new ValueTask<int>(error == SocketError.Success ? peeked : 0);
                }
                _mayRead = false;
            }
            return _readable.Start(Memory<byte>.Empty);
        }
    }

    /// <summary>
    /// For a listening socket: accepts a connection waiting on it, on the calling thread (the loop's, when it follows a
    /// readable event). False when none is waiting: <see cref="WaitReadableAsync"/> then waits for the loop's word that
    /// one came. Throws <see cref="SocketException"/> for a failure other than a connection aborted while it waited.
    /// </summary>
    public bool TryAccept([NotNullWhen(true)] out Socket? accepted)
    {
        accepted = null;
        lock (_lock)
        {
            ThrowIfClosed();
            if (!_mayRead)
            {
                return false;
            }
            var descriptor = Accept4(Socket.SafeHandle.DangerousGetHandle(), 0, 0, SockNonBlock | SockCloexec);
            if (descriptor < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                switch (errno)
                {
                    case ErrnoAgain:
                        _mayRead = false; // the queue is empty: the next arrival is reported
                        return false;
                    case ErrnoConnectionAborted or ErrnoInterrupted or ErrnoProtocol:
                        return false; // that one is gone; others may wait (the loop's wait comes back at once)
                    default:
                        throw new SocketException(errno is ErrnoTooManyFiles or ErrnoTooManyFilesInSystem
                            ? (int)SocketError.TooManyOpenSockets : (int)SocketError.SocketError);
                }
            }
            accepted = new Socket(new SafeSocketHandle(descriptor, ownsHandle: true));
            return true;
        }
    }

    /// <summary>
    /// Starts connecting a non-blocking socket that is not on a loop yet: true when it connected at once, false while
    /// the connection is being made (it is made or failed once the socket can be written to, the error then in
    /// <see cref="SocketOptionName.Error"/>). What the system refuses at once is thrown. No exception for a connection
    /// in progress, as <see cref="Socket.Connect(EndPoint)"/> throws on a non-blocking socket.
    /// </summary>
    public static bool StartConnect(Socket socket, IPEndPoint endPoint)
    {
        var address = endPoint.Serialize();
        var handle = socket.SafeHandle;
        var added = false;
        int result, errno = 0;
        try
        {
            handle.DangerousAddRef(ref added);
            result = Connect(handle.DangerousGetHandle(), ref MemoryMarshal.GetReference(address.Buffer.Span), address.Size);
            if (result < 0)
            {
                errno = Marshal.GetLastPInvokeError();
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
        return result == 0 || errno switch
        {
            ErrnoInProgress or ErrnoAgain or ErrnoInterrupted => false, // interrupted, it goes on being made
            _ => throw new SocketException((int)(errno switch
            {
                ErrnoConnectionRefused => SocketError.ConnectionRefused,
                ErrnoNetworkUnreachable => SocketError.NetworkUnreachable,
                ErrnoHostUnreachable => SocketError.HostUnreachable,
                ErrnoAddressNotAvailable => SocketError.AddressNotAvailable,
                ErrnoTimedOut => SocketError.TimedOut,
                ErrnoTooManyFiles or ErrnoTooManyFilesInSystem => SocketError.TooManyOpenSockets,
                _ => SocketError.SocketError,
            })),
        };
    }

    private const int SockNonBlock = 0x800, SockCloexec = 0x80000;
    private const int ErrnoInterrupted = 4, ErrnoAgain = 11, ErrnoTooManyFilesInSystem = 23, ErrnoTooManyFiles = 24, ErrnoProtocol = 71, ErrnoConnectionAborted = 103;
    private const int ErrnoAddressNotAvailable = 99, ErrnoNetworkUnreachable = 101, ErrnoTimedOut = 110, ErrnoConnectionRefused = 111, ErrnoHostUnreachable = 113, ErrnoInProgress = 115;

    [DllImport("libc", EntryPoint = "connect", SetLastError = true)]
    private static extern int Connect(nint socket, ref byte address, int addressLength);

    [DllImport("libc", EntryPoint = "accept4", SetLastError = true)]
    private static extern int Accept4(nint socket, nint address, nint addressLength, int flags);

    /// <summary>Waits until the socket can be written to: for a connection being made, until it is made or failed.</summary>
    public ValueTask<int> WaitWritableAsync()
    {
        lock (_lock)
        {
            ThrowIfClosed();
            return _mayWrite ? new ValueTask<int>(0) : _writableWait.Start(Memory<byte>.Empty);
        }
    }

    /// <summary>Copies what the socket holds into <paramref name="buffer"/> without reading it: -1 when it holds nothing yet, 0 when the peer closed.</summary>
    public int Peek(Span<byte> buffer)
    {
        var peeked = Socket.Receive(buffer, SocketFlags.Peek, out var error);
        return error switch
        {
            SocketError.Success => peeked,
            SocketError.WouldBlock => -1,
            _ => throw new SocketException((int)error),
        };
    }

    /// <summary>
    /// Closes the socket with a reset instead of an orderly close, failing what is pending on it, except that a pending
    /// receive ends as if the peer had closed (0): for a call given up, so the peer learns at once that it is over and
    /// neither side is left to finish closing the connection, and the code awaiting the receive, which knows why the
    /// call ended, is not sent an exception to unwind.
    /// </summary>
    public void Reset()
    {
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }
            try
            {
                Socket.LingerState = s_reset;
            }
            catch (SocketException)
            {
                // The close below is orderly, then.
            }
        }
        if (Close(receiveEnds: true))
        {
            Socket.Dispose();
        }
    }

    private static readonly LingerOption s_reset = new(enable: true, seconds: 0);

    /// <summary>Closes the socket, failing what is pending on it.</summary>
    public void Abort()
    {
        if (Close())
        {
            Socket.Dispose();
        }
    }

    /// <summary>Takes the open socket off the loop, failing what is pending on it, and gives it back in blocking mode.</summary>
    public Socket Detach()
    {
        if (Close())
        {
            _loop.Remove(this, unregister: true);
            Socket.Blocking = true;
        }
        return Socket;
    }

    private bool Close(bool receiveEnds = false)
    {
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }
            _closed = true;
        }
        _loop.Remove(this, unregister: false);
        // The error is made only when something waits for it: its message is looked up from the system.
        SocketException? aborted = null;
        if (!receiveEnds)
        {
            _receive.TryFail(ref aborted);
        }
        else if (_receive.Take())
        {
            _receive.Complete(0, null);
        }
        _send.TryFail(ref aborted);
        _readable.TryFail(ref aborted);
        _writableWait.TryFail(ref aborted);
        return true;
    }

    /// <summary>From the loop: the socket became readable and/or writable. Completes what waited for it.</summary>
    public void OnEvents(bool readable, bool writable, bool ended)
    {
        int received = 0, sent = 0;
        Exception? receiveError = null, sendError = null;
        bool completeReceive = false, completeSend = false, completeReadable = false, completeWritable = false;
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }
            _ended |= ended;
            if (readable)
            {
                _mayRead = true;
                if (_receive.Pending)
                {
                    received = Socket.Receive(_receive.Buffer.Span, SocketFlags.None, out var error);
                    if (error == SocketError.WouldBlock)
                    {
                        _mayRead = false;
                    }
                    else
                    {
                        if (error == SocketError.Success)
                        {
                            NoteReceived(received, _receive.Buffer.Length);
                        }
                        completeReceive = _receive.Take();
                        receiveError = error == SocketError.Success ? null : new SocketException((int)error);
                    }
                }
                completeReadable = _mayRead && _readable.Take();
            }
            if (writable)
            {
                _mayWrite = true;
                completeWritable = _writableWait.Take();
                if (_send.Pending)
                {
                    sent = _send.Sent;
                    if (!TrySend(_send.Data.Span, ref sent, out var error))
                    {
                        completeSend = _send.Take();
                        sendError = new SocketException((int)error);
                    }
                    else if (sent == _send.Data.Length)
                    {
                        completeSend = _send.Take();
                    }
                    else
                    {
                        _send.Sent = sent;
                    }
                }
            }
        }
        if (completeReceive)
        {
            _receive.Complete(received, receiveError);
        }
        if (completeReadable)
        {
            _readable.Complete(0, null);
        }
        if (completeWritable)
        {
            _writableWait.Complete(0, null);
        }
        if (completeSend)
        {
            _send.Complete(sent, sendError);
        }
    }

    /// <summary>At the end of the loop's batch: sends what <see cref="SendAsync"/> held back, unless an event sent it already.</summary>
    private void SendHeld()
    {
        var sent = 0;
        Exception? sendError = null;
        lock (_lock)
        {
            if (_closed || !_send.Pending || !_mayWrite)
            {
                return; // failed by the close, sent on an event, or waiting for room
            }
            sent = _send.Sent;
            if (!TrySend(_send.Data.Span, ref sent, out var error))
            {
                sendError = new SocketException((int)error);
            }
            else if (sent < _send.Data.Length)
            {
                _send.Sent = sent;
                return; // the rest when the socket has room
            }
            if (!_send.Take())
            {
                return;
            }
        }
        _send.Complete(sent, sendError);
    }

    /// <summary>
    /// A read that filled less than its buffer took all the socket held: the next read waits for the loop's word that
    /// more came (every arrival is reported) instead of trying and finding nothing. Not once the peer closed: its end,
    /// reported already, is still there to read.
    /// </summary>
    private void NoteReceived(int received, int wanted)
    {
        if (received > 0 && received < wanted && !_ended)
        {
            _mayRead = false;
        }
    }

    /// <summary>Sends from <paramref name="sent"/> until all is sent or the socket is full (clearing the write hint); false on an error.</summary>
    private bool TrySend(ReadOnlySpan<byte> data, ref int sent, out SocketError error)
    {
        error = SocketError.Success;
        while (sent < data.Length)
        {
            var count = Socket.Send(data[sent..], SocketFlags.None, out error);
            if (error == SocketError.WouldBlock)
            {
                _mayWrite = false;
                error = SocketError.Success;
                return true;
            }
            if (error != SocketError.Success)
            {
                return false;
            }
            sent += count;
        }
        return true;
    }

    private void ThrowIfClosed()
    {
        if (_closed)
        {
            throw new SocketException((int)SocketError.OperationAborted);
        }
    }
}

/// <summary>One pending operation of a <see cref="LoopSocket"/>, reused from one to the next; its continuation runs where it completes.</summary>
internal sealed class LoopOperation : IValueTaskSource<int>
{
    private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = false };
    private int _pending;

    public bool Pending => _pending != 0;

    public Memory<byte> Buffer { get; private set; }

    public ReadOnlyMemory<byte> Data { get; private set; }

    public int Sent { get; set; }

    public ValueTask<int> Start(Memory<byte> buffer)
    {
        Buffer = buffer;
        return Start();
    }

    public ValueTask<int> Start(ReadOnlyMemory<byte> data, int sent)
    {
        Data = data;
        Sent = sent;
        return Start();
    }

    private ValueTask<int> Start()
    {
        if (Interlocked.Exchange(ref _pending, 1) != 0)
        {
            throw new InvalidOperationException("another operation of the same kind is already pending on this socket");
        }
        _core.Reset();
        return new ValueTask<int>(this, _core.Version);
    }

    /// <summary>Claims the pending operation for completion: true for exactly one caller.</summary>
    public bool Take() => Interlocked.Exchange(ref _pending, 0) != 0;

    public void Complete(int result, Exception? error)
    {
        Buffer = default;
        Data = default;
        if (error is null)
        {
            _core.SetResult(result);
        }
        else
        {
            _core.SetException(error);
        }
    }

    /// <summary>Fails the operation if pending, with <paramref name="aborted"/>, made on first use.</summary>
    public void TryFail(ref SocketException? aborted)
    {
        if (Take())
        {
            Complete(0, aborted ??= new SocketException((int)SocketError.OperationAborted));
        }
    }

    public int GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
