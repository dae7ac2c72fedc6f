using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SharedRuntime.AppChannel;
using SharedRuntime.Http.Relay.H2;

namespace SharedRuntime.Http.Relay;

/// <summary>A breach of HTTP/2 by the app: the connection cannot go on, and the call fails as the app's fault.</summary>
internal sealed class H2ProtocolException(string message) : IOException(message);

/// <summary>
/// Relaying to an app that speaks h2c: the request goes out as HTTP/2 frames on a new stream of one of the channel's
/// HTTP/2 connections (each carries one request at a time, as an HTTP/1.1 connection would), and the app's answer is
/// written to the caller as HTTP/1.1, its body copied from the DATA frames as they come.
/// </summary>
internal sealed partial class RelayConnection
{
    /// <summary>Buffers one HTTP/2 call holds: the answer's header block as it arrives and the HTTP/1.1 head made of it.</summary>
    private byte[] _h2Block = [];
    private H2Answer? _h2Answer;
    private int _h2Stream;
    private bool _h2Ended;

    private readonly record struct Frame(byte Type, byte Flags, int StreamId, int Offset, int Length)
    {
        public bool Has(byte flag) => (Flags & flag) != 0;
    }

    private void RentH2()
    {
        if (_h2Answer is null)
        {
            _h2Block = ArrayPool<byte>.Shared.Rent(H2Session.MaxHeaderList);
            _h2Answer = new H2Answer(ArrayPool<byte>.Shared.Rent(H2Session.MaxHeaderList));
        }
        _h2Answer.Reset();
    }

    private void ReturnH2()
    {
        if (_h2Answer is { } answer)
        {
            ArrayPool<byte>.Shared.Return(_h2Block);
            ArrayPool<byte>.Shared.Return(answer.Buffer);
            _h2Block = [];
            _h2Answer = null;
        }
    }

    /// <summary>
    /// Sends the request written in the scratch buffer on a new stream and reads the app's answer up to its final
    /// headers, made into an HTTP/1.1 head. A kept connection the app closed, or left without taking the request
    /// (GOAWAY), is replaced once. The channel's timeout closes the connection when the app takes longer.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Exchange> SendH2Async(RelayCall call, int requestLength)
    {
        var timeout = call.Channel.Config.Timeout;
        _timeout.CancelAfter(timeout);
        RentH2();
        var answer = _h2Answer!;
        var toHead = _head.HeadRequest(_buffer.AsSpan(_start));
        for (var attempt = 0; ; attempt++)
        {
            var (upstream, failed) = await TakeConnectionAsync(call).ConfigureAwait(false);
            if (upstream is null)
            {
                return new Exchange(null, default, 0, 0, failed);
            }
            Volatile.Write(ref _calling, upstream);
            if (_clientGone)
            {
                upstream.Abort();
            }
            using var abort = _timeout.Token.UnsafeRegister(static state => ((AppConnection)state!).Abort(), upstream);
            var session = upstream.H2!;
            var stream = 0;
            var heard = false;
            try
            {
                stream = session.OpenStream();
                session.NewStreamWindow();
                var headEnd = RequestHead.FindEnd(_scratch.AsSpan(0, requestLength));
                var body = requestLength - headEnd;
                var frames = ArrayPool<byte>.Shared.Rent(session.PendingControl.Length + 2 * requestLength + 256);
                try
                {
                    session.PendingControl.Span.CopyTo(frames);
                    var at = session.PendingControl.Length;
                    session.ControlSent();
                    var written = H2Request.WriteHeaders(_scratch, headEnd, stream, endStream: body == 0, session.PeerMaxFrame, frames.AsSpan(at));
                    if (written < 0)
                    {
                        upstream.Dispose();
                        return new Exchange(null, default, 0, 0, "the request's headers do not fit an HTTP/2 header block");
                    }
                    at += written;
                    var sendBody = body > 0 && body <= session.SendWindow && body <= session.StreamSendWindow;
                    if (sendBody)
                    {
                        at += H2Request.WriteData(_scratch.AsSpan(headEnd, body), stream, session.PeerMaxFrame, frames.AsSpan(at));
                        session.Spend(body);
                        session.SpendOnStream(body);
                    }
                    await upstream.Socket.SendAsync(frames.AsMemory(0, at)).ConfigureAwait(false);
                    if (body > 0 && !sendBody)
                    {
                        // The app's windows are smaller than the body for now: its updates are awaited (within the timeout).
                        while (body > session.SendWindow || body > session.StreamSendWindow)
                        {
                            var frame = await ReadFrameAsync(upstream).ConfigureAwait(false);
                            if (frame.StreamId == stream && frame.Type is H2Frame.Headers or H2Frame.ResetStream or H2Frame.Data)
                            {
                                throw new H2ProtocolException("the app answered before the request's body was sent");
                            }
                            Control(upstream, frame, stream);
                        }
                        var length = H2Request.WriteData(_scratch.AsSpan(headEnd, body), stream, session.PeerMaxFrame, frames);
                        session.Spend(body);
                        session.SpendOnStream(body);
                        await upstream.Socket.SendAsync(frames.AsMemory(0, length)).ConfigureAwait(false);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(frames);
                }
                while (true)
                {
                    var frame = await ReadFrameAsync(upstream).ConfigureAwait(false);
                    if (frame.StreamId != stream || frame.Type is not (H2Frame.Headers or H2Frame.Data or H2Frame.ResetStream))
                    {
                        Control(upstream, frame, stream);
                        if (session.GoingAway && session.LastStreamId < stream)
                        {
                            throw new H2ProtocolException("the app went away without taking the request");
                        }
                        continue;
                    }
                    heard = true;
                    if (frame.Type == H2Frame.Data)
                    {
                        throw new H2ProtocolException("the app sent its answer's body before its headers");
                    }
                    if (frame.Type == H2Frame.ResetStream)
                    {
                        upstream.Dispose();
                        return new Exchange(null, default, 0, 0, $"the app reset the stream of the request ({ErrorName(upstream.Buffer, frame)})");
                    }
                    var endStream = frame.Has(H2Frame.EndStream);
                    answer.Reset();
                    await ReadHeaderBlockAsync(upstream, frame, answer).ConfigureAwait(false);
                    answer.Finish(endStream, toHead);
                    if (answer.Problem is { } problem)
                    {
                        upstream.Dispose();
                        return new Exchange(null, default, 0, 0, $"the app's answer is not valid HTTP: {problem}");
                    }
                    var head = ResponseHead.Parse(answer.Head, toHead);
                    if (head.Problem is { } invalid)
                    {
                        upstream.Dispose();
                        return new Exchange(null, default, 0, 0, $"the app's answer is not valid HTTP: {invalid}");
                    }
                    if (head.Interim)
                    {
                        if (endStream)
                        {
                            throw new H2ProtocolException("the app ended the stream with an interim answer");
                        }
                        continue; // 100 Continue and other interim answers: the final one follows
                    }
                    _h2Stream = stream;
                    _h2Ended = endStream;
                    return new Exchange(upstream, head, answer.Length, 0, null);
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
            {
                upstream.Dispose();
                if (_clientGone)
                {
                    return new Exchange(null, default, 0, 0, null, ClientGone: true);
                }
                if (_timeout.IsCancellationRequested)
                {
                    return new Exchange(null, default, 0, 0, TimedOut(call));
                }
                var notTaken = session.GoingAway && session.LastStreamId < stream;
                if (attempt == 0 && !heard && (notTaken || (upstream.Reused && ex is not H2ProtocolException)))
                {
                    continue; // the app closed a kept connection, or went away before this stream: once more, on a new one
                }
                return new Exchange(null, default, 0, 0, ex is ObjectDisposedException ? "the connection to the app was closed" : ex.Message);
            }
        }
    }

    /// <summary>
    /// Writes the app's answer to the client: the head made of its headers, then the DATA frames' bytes as they come (as
    /// chunks when the app gave no length). Trailers are read and dropped. True when the connection can carry another
    /// request: the stream ended as HTTP/2 says it must.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> CopyH2AnswerAsync(RelayCall call, AppConnection upstream, ResponseHead head, bool close)
    {
        var session = upstream.H2!;
        var stream = _h2Stream;
        var timeout = call.Channel.Config.Timeout;
        using var abort = _timeout.Token.UnsafeRegister(static state => ((AppConnection)state!).Abort(), upstream);
        var output = head.Write(_h2Answer!.Head, _scratch, close);
        var chunked = head.Framing is BodyFraming.UntilClose;
        var remaining = head.Framing == BodyFraming.Length ? head.ContentLength : 0;
        var ended = _h2Ended;
        while (!ended)
        {
            if (output > 0 && !HasFrame(upstream))
            {
                // Nothing more is here yet: what the client can have goes out before waiting on the app.
                await client.SendAsync(_scratch.AsMemory(0, output)).ConfigureAwait(false);
                output = 0;
            }
            _timeout.CancelAfter(timeout);
            var frame = await ReadFrameAsync(upstream).ConfigureAwait(false);
            if (frame.StreamId != stream || frame.Type is not (H2Frame.Headers or H2Frame.Data or H2Frame.ResetStream))
            {
                Control(upstream, frame, stream);
                continue;
            }
            ended = frame.Has(H2Frame.EndStream);
            switch (frame.Type)
            {
                case H2Frame.ResetStream:
                    throw new H2ProtocolException($"the app reset the stream in the middle of its answer ({ErrorName(upstream.Buffer, frame)})");
                case H2Frame.Headers:
                    if (!ended)
                    {
                        throw new H2ProtocolException("the app sent headers after its answer's body without ending the stream");
                    }
                    _h2Answer.Reset();
                    _h2Answer.Discard = true;
                    await ReadHeaderBlockAsync(upstream, frame, _h2Answer).ConfigureAwait(false);
                    break;
                default:
                {
                    var (dataAt, dataLength) = Payload(upstream.Buffer, frame);
                    if (session.Received(frame.Length, stream, streamOpen: !ended) is { } flood)
                    {
                        throw new H2ProtocolException(flood);
                    }
                    if (head.Framing == BodyFraming.Length)
                    {
                        if (dataLength > remaining)
                        {
                            throw new H2ProtocolException("the app sent more body than its content-length says");
                        }
                        remaining -= dataLength;
                    }
                    else if (head.Framing == BodyFraming.None)
                    {
                        if (dataLength > 0)
                        {
                            throw new H2ProtocolException("the app sent a body with an answer that has none");
                        }
                        break;
                    }
                    if (dataLength == 0)
                    {
                        break;
                    }
                    var needed = dataLength + (chunked ? 12 : 0);
                    if (output + needed > _scratch.Length)
                    {
                        await client.SendAsync(_scratch.AsMemory(0, output)).ConfigureAwait(false);
                        output = 0;
                    }
                    output += WriteBody(upstream.Buffer.AsSpan(dataAt, dataLength), chunked, _scratch.AsSpan(output));
                    break;
                }
            }
        }
        if (remaining != 0)
        {
            throw new H2ProtocolException("the app ended its answer before its content-length");
        }
        if (chunked)
        {
            if (output + 5 > _scratch.Length)
            {
                await client.SendAsync(_scratch.AsMemory(0, output)).ConfigureAwait(false);
                output = 0;
            }
            "0\r\n\r\n"u8.CopyTo(_scratch.AsSpan(output));
            output += 5;
        }
        if (output > 0)
        {
            await client.SendAsync(_scratch.AsMemory(0, output)).ConfigureAwait(false);
        }
        return session.Reusable;
    }

    private static int WriteBody(ReadOnlySpan<byte> data, bool chunked, Span<byte> into)
    {
        if (!chunked)
        {
            data.CopyTo(into);
            return data.Length;
        }
        var writer = new HeadWriter(into);
        writer.WriteHex(data.Length);
        writer.Write("\r\n"u8);
        writer.Write(data);
        writer.Write("\r\n"u8);
        return writer.Length;
    }

    /// <summary>Takes an idle connection of the channel or opens one; the problem when none can be had.</summary>
    private async ValueTask<(AppConnection? Upstream, string? Problem)> TakeConnectionAsync(RelayCall call)
    {
        var upstream = call.Connections.TakeIdle();
        try
        {
            return (upstream ?? await call.Connections.ConnectAsync(_timeout.Token).ConfigureAwait(false), null);
        }
        catch (OperationCanceledException) when (_timeout.IsCancellationRequested)
        {
            return (null, TimedOut(call));
        }
        catch (OperationCanceledException)
        {
            return (null, $"the app could not be reached at {call.Connections.Authority} within {AppConnections.ConnectTimeout.TotalSeconds:0}s");
        }
        catch (SocketException ex)
        {
            return (null, $"{ex.Message} ({call.Connections.Authority})");
        }
    }

    /// <summary>
    /// Handles a frame that is not part of the call's own stream: settings, pings, window updates and GOAWAY are
    /// answered or applied; a header block on another stream is decoded and dropped (the header table must follow it);
    /// the rest is ignored. A breach of the protocol throws <see cref="H2ProtocolException"/>.
    /// </summary>
    private void Control(AppConnection upstream, Frame frame, int stream)
    {
        var session = upstream.H2!;
        var payload = upstream.Buffer.AsSpan(frame.Offset, frame.Length);
        string? problem = null;
        switch (frame.Type)
        {
            case H2Frame.Settings:
                if (frame.StreamId != 0)
                {
                    problem = "a SETTINGS frame on a stream";
                }
                else if (!frame.Has(H2Frame.Ack))
                {
                    problem = session.ApplySettings(payload);
                }
                break;
            case H2Frame.Ping:
                if (frame.StreamId != 0 || frame.Length != 8)
                {
                    problem = "a malformed PING frame";
                }
                else if (!frame.Has(H2Frame.Ack))
                {
                    problem = session.Pong(payload);
                }
                break;
            case H2Frame.WindowUpdate:
                problem = frame.Length != 4 ? "a malformed WINDOW_UPDATE frame"
                    : session.Opened(frame.StreamId, stream, BinaryPrimitives.ReadUInt32BigEndian(payload));
                break;
            case H2Frame.GoAway:
                if (frame.StreamId != 0 || frame.Length < 8)
                {
                    problem = "a malformed GOAWAY frame";
                }
                else
                {
                    session.GoAway(BinaryPrimitives.ReadInt32BigEndian(payload));
                }
                break;
            case H2Frame.Data:
                // A stream given up on (its call ended early): only its bytes' share of the window counts.
                problem = frame.StreamId == 0 ? "a DATA frame on stream 0" : session.Received(frame.Length, frame.StreamId, streamOpen: false);
                break;
            case H2Frame.Headers:
                if (frame.StreamId == 0 || frame.StreamId > stream)
                {
                    problem = "a HEADERS frame on a stream the relay did not open";
                }
                else
                {
                    // Decoded, synchronously (the block is all in this frame), to keep the header table in step; else a breach.
                    if (!frame.Has(H2Frame.EndHeaders))
                    {
                        problem = "a header block on a stream given up on, continued in another frame";
                    }
                    else
                    {
                        var answer = _h2Answer!;
                        answer.Reset();
                        answer.Discard = true;
                        problem = Fragment(upstream.Buffer, frame, out var fragment) ?? session.Decoder.Decode(fragment, answer);
                    }
                }
                break;
            case H2Frame.PushPromise:
                problem = "a PUSH_PROMISE, though push is off";
                break;
            case H2Frame.Continuation:
                problem = "a CONTINUATION frame that continues nothing";
                break;
        }
        if (problem is not null)
        {
            throw new H2ProtocolException($"the app broke HTTP/2: {problem}");
        }
    }

    /// <summary>Reads a header block (the frame's fragment and its CONTINUATION frames) and decodes it into <paramref name="answer"/>.</summary>
    private async ValueTask ReadHeaderBlockAsync(AppConnection upstream, Frame frame, H2Answer answer)
    {
        var session = upstream.H2!;
        var length = FirstFragment(upstream, frame, answer);
        if (length < 0)
        {
            return;
        }
        while (true)
        {
            var next = await ReadFrameAsync(upstream).ConfigureAwait(false);
            if (next.Type != H2Frame.Continuation || next.StreamId != frame.StreamId)
            {
                throw new H2ProtocolException("the app broke HTTP/2: a header block not continued by CONTINUATION frames");
            }
            if (length + next.Length > _h2Block.Length)
            {
                throw new H2ProtocolException($"the app's response headers are longer than {_h2Block.Length} bytes");
            }
            upstream.Buffer.AsSpan(next.Offset, next.Length).CopyTo(_h2Block.AsSpan(length));
            length += next.Length;
            if (next.Has(H2Frame.EndHeaders))
            {
                Decode(session, _h2Block.AsSpan(0, length), answer);
                return;
            }
        }
    }

    /// <summary>Decodes a block that is all in <paramref name="frame"/> (and returns -1), or keeps its first fragment aside and returns its length.</summary>
    private int FirstFragment(AppConnection upstream, Frame frame, H2Answer answer)
    {
        if (Fragment(upstream.Buffer, frame, out var first) is { } malformed)
        {
            throw new H2ProtocolException($"the app broke HTTP/2: {malformed}");
        }
        if (frame.Has(H2Frame.EndHeaders))
        {
            Decode(upstream.H2!, first, answer);
            return -1;
        }
        first.CopyTo(_h2Block);
        return first.Length;
    }

    private static void Decode(H2Session session, ReadOnlySpan<byte> block, H2Answer answer)
    {
        if (session.Decoder.Decode(block, answer) is { } problem)
        {
            throw new H2ProtocolException($"the app's header block cannot be decoded: {problem}");
        }
    }

    /// <summary>A HEADERS frame's header block fragment, without its padding and priority.</summary>
    private static string? Fragment(byte[] buffer, Frame frame, out ReadOnlySpan<byte> fragment)
    {
        var payload = buffer.AsSpan(frame.Offset, frame.Length);
        var skip = 0;
        var pad = 0;
        if (frame.Has(H2Frame.Padded))
        {
            if (payload.Length < 1)
            {
                fragment = default;
                return "a padded frame with no pad length";
            }
            pad = payload[0];
            skip = 1;
        }
        if (frame.Has(H2Frame.PriorityFlag))
        {
            skip += 5;
        }
        if (skip + pad > payload.Length)
        {
            fragment = default;
            return "a frame whose padding is longer than it";
        }
        fragment = payload[skip..^pad];
        return null;
    }

    /// <summary>Where a DATA frame's bytes are in the buffer, without its padding.</summary>
    private static (int Offset, int Length) Payload(byte[] buffer, Frame frame)
    {
        if (!frame.Has(H2Frame.Padded))
        {
            return (frame.Offset, frame.Length);
        }
        if (frame.Length < 1 || buffer[frame.Offset] + 1 > frame.Length)
        {
            throw new H2ProtocolException("the app broke HTTP/2: a DATA frame whose padding is longer than it");
        }
        return (frame.Offset + 1, frame.Length - 1 - buffer[frame.Offset]);
    }

    private static string ErrorName(byte[] buffer, Frame frame)
    {
        if (frame.Length != 4)
        {
            return "malformed";
        }
        var code = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(frame.Offset));
        return code switch
        {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0xb => "ENHANCE_YOUR_CALM",
            _ => $"error code {code}",
        };
    }

    /// <summary>Whether a whole frame is already in the connection's buffer.</summary>
    private static bool HasFrame(AppConnection upstream)
    {
        var session = upstream.H2!;
        var have = session.End - session.Start;
        if (have < H2Frame.HeaderLength)
        {
            return false;
        }
        var buffer = upstream.Buffer;
        var length = (buffer[session.Start] << 16) | (buffer[session.Start + 1] << 8) | buffer[session.Start + 2];
        return have >= H2Frame.HeaderLength + length;
    }

    /// <summary>
    /// The next frame from the app, its payload in the connection's buffer until the next read. Control frames waiting
    /// to go out are written before the socket is read. A frame longer than the relay allows ends the connection.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<Frame> ReadFrameAsync(AppConnection upstream)
    {
        var session = upstream.H2!;
        var buffer = upstream.Buffer;
        while (true)
        {
            var have = session.End - session.Start;
            if (have >= H2Frame.HeaderLength)
            {
                var at = session.Start;
                var length = (buffer[at] << 16) | (buffer[at + 1] << 8) | buffer[at + 2];
                if (length > H2Frame.MaxPayload)
                {
                    throw new H2ProtocolException($"the app broke HTTP/2: a frame of {length} bytes, above the {H2Frame.MaxPayload} allowed");
                }
                if (have >= H2Frame.HeaderLength + length)
                {
                    session.Start = at + H2Frame.HeaderLength + length;
                    var streamId = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(at + 5)) & int.MaxValue;
                    return new Frame(buffer[at + 3], buffer[at + 4], streamId, at + H2Frame.HeaderLength, length);
                }
            }
            if (session.Start > 0)
            {
                buffer.AsSpan(session.Start, have).CopyTo(buffer);
                session.Start = 0;
                session.End = have;
            }
            if (session.PendingControl.Length > 0)
            {
                await upstream.Socket.SendAsync(session.PendingControl).ConfigureAwait(false);
                session.ControlSent();
            }
            var received = await upstream.Socket.ReceiveAsync(buffer.AsMemory(session.End)).ConfigureAwait(false);
            if (received == 0)
            {
                throw new IOException("the app closed the connection");
            }
            session.End += received;
        }
    }
}
