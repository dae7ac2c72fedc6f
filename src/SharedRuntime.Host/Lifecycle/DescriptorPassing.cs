using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Sends and receives open socket descriptors over a Unix domain socket (<c>SCM_RIGHTS</c>), the way HAProxy and Envoy
/// pass listeners to the process that takes over. Linux on 64-bit only: the message structures below have its layout.
/// </summary>
/// <remarks>
/// A descriptor in flight is a reference of its own to the open socket: once <see cref="Send"/> returns, the listener
/// survives even if the sender closes its own descriptor before the receiver has read the message.
/// </remarks>
internal static class DescriptorPassing
{
    private const int SolSocket = 1;
    private const int ScmRights = 1;
    private const int SoPeerCred = 17;
    private const int MsgNoSignal = 0x4000;
    private const int MsgControlTruncated = 0x8;
    private const int MsgCmsgCloexec = 0x40000000;
    private const int OCloexec = 0x80000;
    private const int ControlHeaderBytes = 16;

    /// <summary>Descriptors accepted in one message; more is a protocol error.</summary>
    public const int MaxDescriptors = 64;

    /// <summary>Whether this platform has the layout the calls below assume.</summary>
    public static bool Supported => OperatingSystem.IsLinux() && IntPtr.Size == 8;

    /// <summary>Sends <paramref name="data"/> with the descriptors of <paramref name="sockets"/> attached.</summary>
    public static void Send(Socket connection, ReadOnlySpan<byte> data, IReadOnlyList<Socket> sockets)
    {
        if (sockets.Count > MaxDescriptors)
        {
            throw new ArgumentOutOfRangeException(nameof(sockets), $"at most {MaxDescriptors} descriptors per message");
        }
        var payload = data.ToArray();
        var control = new byte[sockets.Count == 0 ? 0 : ControlSpace(sockets.Count)];
        if (sockets.Count > 0)
        {
            BitConverter.TryWriteBytes(control.AsSpan(0, 8), (long)(ControlHeaderBytes + (4 * sockets.Count)));
            BitConverter.TryWriteBytes(control.AsSpan(8, 4), SolSocket);
            BitConverter.TryWriteBytes(control.AsSpan(12, 4), ScmRights);
            for (var i = 0; i < sockets.Count; i++)
            {
                BitConverter.TryWriteBytes(control.AsSpan(ControlHeaderBytes + (4 * i), 4), (int)sockets[i].SafeHandle.DangerousGetHandle());
            }
        }
        var sent = Transfer(connection, payload, control, receive: false, out _, out _);
        if (sent != payload.Length)
        {
            throw new IOException($"sent {sent} of {payload.Length} bytes");
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for a message and reads it into <paramref name="buffer"/>; descriptors that
    /// came with it are added to <paramref name="descriptors"/>, owned by the caller. Returns the bytes read (0: closed).
    /// </summary>
    public static int Receive(Socket connection, Span<byte> buffer, List<SafeSocketHandle> descriptors, TimeSpan timeout)
    {
        if (!connection.Poll(timeout, SelectMode.SelectRead))
        {
            throw new TimeoutException($"no answer within {timeout.TotalSeconds:0.#}s");
        }
        var payload = new byte[buffer.Length];
        var control = new byte[ControlSpace(MaxDescriptors)];
        var read = Transfer(connection, payload, control, receive: true, out var controlLength, out var flags);
        for (var offset = 0; offset + ControlHeaderBytes <= controlLength;)
        {
            var length = (int)BitConverter.ToInt64(control, offset);
            if (length < ControlHeaderBytes || offset + length > controlLength)
            {
                break;
            }
            if (BitConverter.ToInt32(control, offset + 8) == SolSocket && BitConverter.ToInt32(control, offset + 12) == ScmRights)
            {
                for (var at = offset + ControlHeaderBytes; at + 4 <= offset + length; at += 4)
                {
                    descriptors.Add(new SafeSocketHandle(BitConverter.ToInt32(control, at), ownsHandle: true));
                }
            }
            offset += Align(length);
        }
        if ((flags & MsgControlTruncated) != 0)
        {
            throw new IOException($"more than {MaxDescriptors} descriptors in one message");
        }
        payload.AsSpan(0, read).CopyTo(buffer);
        return read;
    }

    /// <summary>The effective user id of the process at the other end of <paramref name="connection"/>.</summary>
    public static uint PeerUserId(Socket connection)
    {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        Span<byte> credentials = stackalloc byte[12];
        connection.GetRawSocketOption(SolSocket, SoPeerCred, credentials);
        return BitConverter.ToUInt32(credentials[4..]);
    }

    /// <summary>The process id at the other end of <paramref name="connection"/>.</summary>
    public static int PeerProcessId(Socket connection)
    {
        Span<byte> credentials = stackalloc byte[12];
        connection.GetRawSocketOption(SolSocket, SoPeerCred, credentials);
        return BitConverter.ToInt32(credentials);
    }

    /// <summary>This process's effective user id.</summary>
    public static uint EffectiveUserId() => GetEffectiveUserId();

    /// <summary>
    /// Makes <paramref name="socket"/>'s descriptor refer to <paramref name="replacement"/>'s socket instead, atomically
    /// (<c>dup3</c>). Whatever is done to <paramref name="socket"/> afterwards (an accept, a close, the shutdown .NET
    /// may issue when disposing it) reaches the replacement, never the socket it held before.
    /// </summary>
    public static void Replace(Socket socket, Socket replacement)
    {
        if (Duplicate((int)replacement.SafeHandle.DangerousGetHandle(), (int)socket.SafeHandle.DangerousGetHandle(), OCloexec) < 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }
    }

    private static int Transfer(Socket connection, byte[] payload, byte[] control, bool receive, out int controlLength, out int flags)
    {
        var payloadPin = GCHandle.Alloc(payload, GCHandleType.Pinned);
        var controlPin = GCHandle.Alloc(control, GCHandleType.Pinned);
        var vector = new IoVector { Base = payloadPin.AddrOfPinnedObject(), Length = (nuint)payload.Length };
        var vectorPin = GCHandle.Alloc(vector, GCHandleType.Pinned);
        var added = false;
        try
        {
            connection.SafeHandle.DangerousAddRef(ref added);
            var header = new MessageHeader
            {
                IoVectors = vectorPin.AddrOfPinnedObject(),
                IoVectorCount = 1,
                Control = control.Length == 0 ? 0 : controlPin.AddrOfPinnedObject(),
                ControlLength = (nuint)control.Length,
            };
            var fd = (int)connection.SafeHandle.DangerousGetHandle();
            var result = receive ? ReceiveMessage(fd, ref header, MsgCmsgCloexec) : SendMessage(fd, ref header, MsgNoSignal);
            if (result < 0)
            {
                throw new SocketException(Marshal.GetLastPInvokeError());
            }
            controlLength = (int)header.ControlLength;
            flags = header.Flags;
            return (int)result;
        }
        finally
        {
            if (added)
            {
                connection.SafeHandle.DangerousRelease();
            }
            vectorPin.Free();
            controlPin.Free();
            payloadPin.Free();
        }
    }

    private static int ControlSpace(int descriptors) => ControlHeaderBytes + Align(4 * descriptors);

    private static int Align(int length) => (length + 7) & ~7;

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVector
    {
        public nint Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MessageHeader
    {
        public nint Name;
        public uint NameLength;
        public nint IoVectors;
        public nuint IoVectorCount;
        public nint Control;
        public nuint ControlLength;
        public int Flags;
    }

    [DllImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static extern nint SendMessage(int socket, ref MessageHeader message, int flags);

    [DllImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static extern nint ReceiveMessage(int socket, ref MessageHeader message, int flags);

    [DllImport("libc", EntryPoint = "dup3", SetLastError = true)]
    private static extern int Duplicate(int oldDescriptor, int newDescriptor, int flags);

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEffectiveUserId();
}
