using System.Buffers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SharedRuntime.AppChannel;

namespace SharedRuntime.Http.Relay;

internal sealed partial class RelayConnection
{
    /// <summary>Relays the request in the buffer, if <see cref="InvokeRelay"/> takes it, and copies the app's answer back.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Outcome> RelayAsync()
    {
        var call = relay.Resolve(_head, _buffer.AsSpan(_start, _end - _start), _remote, _tokens, _route, out var route);
        _route = route ?? _route;
        if (call is null)
        {
            return Outcome.NotTaken;
        }
        _scratch = ArrayPool<byte>.Shared.Rent(InvokeRelay.BufferSize + 4096);
        if (!InvokeRelay.TryWriteRequest(call, _head, _buffer.AsSpan(_start, _end - _start), _clientAddress!, _scratch, out var requestLength) ||
            !relay.TryAdmit(call, call.Caller.Admission.Share.Counting ? _turn ??= new Admission.ConnectionTurn() : null))
        {
            ReturnScratch();
            return Outcome.NotTaken;
        }
        _clientGone = false;
        SetState(Relaying);
        var status = 500;
        var close = _head.Close;
        AppConnection? upstream = null;
        var reusable = false;
        try
        {
            if (_peeked)
            {
                // The peeked bytes start with exactly this request: read it now (what follows stays in the socket).
                await ReadPeekedAsync(_head.Length + _head.ContentLength).ConfigureAwait(false);
            }
            // The whole request is read: from now on the caller's socket is readable only when it closes (or sends a
            // request ahead), and a caller that gives up frees its app slot at once, before it can call again.
            WatchClient();
            var exchange = call.Connections.Http2
                ? await SendH2Async(call, requestLength).ConfigureAwait(false)
                : await SendAsync(call, requestLength).ConfigureAwait(false);
            upstream = exchange.Upstream;
            Volatile.Write(ref _calling, null);
            if (exchange.ClientGone)
            {
                status = 499; // the client closed its connection before the app answered
                relay.Answered(call, appFailed: null);
                return Outcome.Close;
            }
            if (exchange.Problem is { } problem)
            {
                relay.Answered(call, appFailed: true);
                close |= listener.Stopped || relay.Closing;
                await WriteErrorAsync(relay.Failure(call, problem), close).ConfigureAwait(false);
                return close ? Outcome.Close : Outcome.Relayed;
            }
            relay.Answered(call, appFailed: false);
            close |= listener.Stopped || relay.Closing;
            status = exchange.Head.Status;
            if (call.Connections.Http2)
            {
                await CopyH2AnswerAsync(call, exchange.Head, close).ConfigureAwait(false);
            }
            else
            {
                reusable = await CopyAnswerAsync(call, upstream!, exchange.Head, exchange.HeadEnd, exchange.Have, close).ConfigureAwait(false);
            }
            return close ? Outcome.Close : Outcome.Relayed;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or InvalidDataException)
        {
            // The client went away, or the app's answer broke off after it began: the connection cannot go on.
            return Outcome.Close;
        }
        finally
        {
            Volatile.Write(ref _calling, null);
            if (upstream is not null)
            {
                if (reusable && !_timeout.IsCancellationRequested)
                {
                    upstream.Reused = true;
                    call.Connections.Return(upstream);
                }
                else
                {
                    upstream.Dispose();
                }
            }
            if (!_timeout.TryReset())
            {
                _timeout.Dispose();
                _timeout = new CancellationTokenSource();
            }
            EndStream();
            relay.Finished(call, status);
            ReturnScratch();
            SetState(Reading);
        }
    }

    private void ReturnScratch()
    {
        ArrayPool<byte>.Shared.Return(_scratch);
        _scratch = [];
    }

    /// <summary>Takes an idle connection of the channel or opens one; the problem when none can be had.</summary>
    private async ValueTask<(AppConnection? Upstream, string? Problem)> TakeConnectionAsync(RelayCall call)
    {
        // On the caller's loop when it can be: the call then runs on one thread from request to answer.
        var upstream = call.Connections.TakeIdle(client.Loop);
        try
        {
            return (upstream ?? await call.Connections.ConnectAsync(_timeout.Token, client.Loop).ConfigureAwait(false), null);
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

    private static string TimedOut(RelayCall call) => $"app {call.TargetAppId} did not answer within {call.Channel.Config.Timeout.TotalSeconds:0.###}s";

    private readonly record struct Exchange(AppConnection? Upstream, ResponseHead Head, int HeadEnd, int Have, string? Problem, bool ClientGone = false);

    /// <summary>
    /// Sends the request written in the scratch buffer and reads the app's response head into the connection's buffer.
    /// A kept connection the app closed before answering is replaced once. The channel's timeout closes the connection
    /// when the app takes longer.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Exchange> SendAsync(RelayCall call, int requestLength)
    {
        var timeout = call.Channel.Config.Timeout;
        _timeout.CancelAfter(timeout);
        for (var attempt = 0; ; attempt++)
        {
            var (upstream, failed) = await TakeConnectionAsync(call).ConfigureAwait(false);
            if (upstream is null)
            {
                return new Exchange(null, default, 0, 0, failed);
            }
            var have = 0;
            Volatile.Write(ref _calling, upstream);
            if (_clientGone)
            {
                upstream.Abort();
            }
            using var abort = _timeout.Token.UnsafeRegister(static state => ((AppConnection)state!).Abort(), upstream);
            try
            {
                await upstream.Socket.SendAsync(_scratch.AsMemory(0, requestLength)).ConfigureAwait(false);
                while (true)
                {
                    var buffer = upstream.Buffer;
                    var headEnd = RequestHead.FindEnd(buffer.AsSpan(0, have));
                    if (headEnd > 0)
                    {
                        var head = ResponseHead.Parse(buffer.AsSpan(0, headEnd), _head.HeadRequest(_buffer.AsSpan(_start)));
                        if (head.Problem is { } invalid)
                        {
                            upstream.Dispose();
                            return new Exchange(null, default, 0, 0, $"the app's answer is not valid HTTP/1.1: {invalid}");
                        }
                        if (head.Interim)
                        {
                            // 100 Continue and other interim answers: the final one follows.
                            Buffer.BlockCopy(buffer, headEnd, buffer, 0, have - headEnd);
                            have -= headEnd;
                            continue;
                        }
                        return new Exchange(upstream, head, headEnd, have, null);
                    }
                    if (have == buffer.Length)
                    {
                        upstream.Dispose();
                        return new Exchange(null, default, 0, 0, $"the app's response headers are longer than {AppConnections.BufferSize} bytes");
                    }
                    var received = await upstream.Socket.ReceiveAsync(buffer.AsMemory(have)).ConfigureAwait(false);
                    if (received == 0)
                    {
                        if (_clientGone || _timeout.IsCancellationRequested)
                        {
                            // The call was ended here (its caller went away, or its time ran out), and the connection
                            // reset (AppConnection.Abort): no exception to unwind for it.
                            upstream.Dispose();
                            return _clientGone
                                ? new Exchange(null, default, 0, 0, null, ClientGone: true)
                                : new Exchange(null, default, 0, 0, TimedOut(call));
                        }
                        throw new IOException("the app closed the connection before it answered");
                    }
                    have += received;
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
                if (upstream.Reused && have == 0 && attempt == 0)
                {
                    continue; // the app closed a kept connection: once more, on a new one
                }
                return new Exchange(null, default, 0, 0, ex is ObjectDisposedException ? "the connection to the app was closed" : ex.Message);
            }
        }
    }

    /// <summary>
    /// Writes the app's answer to the client: its head as <see cref="ResponseHead"/> rewrote it, then its body as the
    /// app framed it (a body that ends when the app closes goes out chunked). True when the app's connection can be
    /// kept: its answer was read exactly to its end.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> CopyAnswerAsync(RelayCall call, AppConnection upstream, ResponseHead head, int headEnd, int have, bool close)
    {
        var headLength = head.Write(upstream.Buffer.AsSpan(0, headEnd), _scratch, close);
        var buffer = upstream.Buffer;
        var timeout = call.Channel.Config.Timeout;
        // An app that stops in the middle of its answer for the channel's timeout has its connection closed, which ends
        // the copy (and the caller's connection, whose answer cannot be completed).
        using var abort = _timeout.Token.UnsafeRegister(static state => ((AppConnection)state!).Abort(), upstream);
        switch (head.Framing)
        {
            case BodyFraming.None:
                await client.SendAsync(_scratch.AsMemory(0, headLength)).ConfigureAwait(false);
                return head.KeepAlive && have == headEnd;
            case BodyFraming.Length:
            {
                var remaining = head.ContentLength;
                var first = (int)Math.Min(have - headEnd, remaining);
                var extra = have - headEnd > remaining;
                remaining -= first;
                if (headLength + first <= _scratch.Length)
                {
                    buffer.AsSpan(headEnd, first).CopyTo(_scratch.AsSpan(headLength));
                    await client.SendAsync(_scratch.AsMemory(0, headLength + first)).ConfigureAwait(false);
                }
                else
                {
                    await client.SendAsync(_scratch.AsMemory(0, headLength)).ConfigureAwait(false);
                    await client.SendAsync(buffer.AsMemory(headEnd, first)).ConfigureAwait(false);
                }
                while (remaining > 0)
                {
                    _timeout.CancelAfter(timeout);
                    var received = await upstream.Socket.ReceiveAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining))).ConfigureAwait(false);
                    if (received == 0)
                    {
                        throw new IOException("the app closed the connection before the end of its answer");
                    }
                    remaining -= received;
                    await client.SendAsync(buffer.AsMemory(0, received)).ConfigureAwait(false);
                }
                return head.KeepAlive && !extra;
            }
            case BodyFraming.Chunked:
            {
                var chunks = new ChunkedScanner();
                var body = Scan(ref chunks, buffer.AsSpan(headEnd, have - headEnd));
                var extra = chunks.Done && headEnd + body < have;
                await client.SendAsync(_scratch.AsMemory(0, headLength)).ConfigureAwait(false);
                if (body > 0)
                {
                    await client.SendAsync(buffer.AsMemory(headEnd, body)).ConfigureAwait(false);
                }
                while (!chunks.Done)
                {
                    _timeout.CancelAfter(timeout);
                    var received = await upstream.Socket.ReceiveAsync(buffer).ConfigureAwait(false);
                    if (received == 0)
                    {
                        throw new IOException("the app closed the connection before the end of its answer");
                    }
                    body = Scan(ref chunks, buffer.AsSpan(0, received));
                    extra = body < received;
                    await client.SendAsync(buffer.AsMemory(0, body)).ConfigureAwait(false);
                }
                return head.KeepAlive && !extra;
            }
            default:
            {
                // Until the app closes: each piece goes out as a chunk.
                await client.SendAsync(_scratch.AsMemory(0, headLength)).ConfigureAwait(false);
                var piece = have - headEnd;
                if (piece > 0)
                {
                    await SendChunkAsync(buffer.AsMemory(headEnd, piece)).ConfigureAwait(false);
                }
                while (true)
                {
                    _timeout.CancelAfter(timeout);
                    var received = await upstream.Socket.ReceiveAsync(buffer).ConfigureAwait(false);
                    if (received == 0 && _timeout.IsCancellationRequested)
                    {
                        // Not the app's close: the timeout reset the connection (a receive then ends with 0). The answer
                        // is cut, not ended as if whole.
                        throw new IOException($"the app sent nothing more of its answer for {timeout.TotalSeconds:0.###}s");
                    }
                    if (received == 0)
                    {
                        break;
                    }
                    await SendChunkAsync(buffer.AsMemory(0, received)).ConfigureAwait(false);
                }
                await client.SendAsync("0\r\n\r\n"u8.ToArray()).ConfigureAwait(false);
                return false;
            }
        }
    }

    private static int Scan(ref ChunkedScanner chunks, ReadOnlySpan<byte> data)
    {
        var body = chunks.Scan(data);
        if (body < 0)
        {
            throw new InvalidDataException("the app's chunked answer is malformed");
        }
        return body;
    }

    private async ValueTask SendChunkAsync(ReadOnlyMemory<byte> data)
    {
        var writer = new HeadWriter(_scratch);
        writer.WriteHex(data.Length);
        writer.Write("\r\n"u8);
        writer.Write(data.Span);
        writer.Write("\r\n"u8);
        await client.SendAsync(_scratch.AsMemory(0, writer.Length)).ConfigureAwait(false);
    }

    private async ValueTask WriteErrorAsync(byte[] body, bool close)
    {
        var writer = new HeadWriter(_scratch);
        writer.Write("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: "u8);
        writer.WriteNumber(body.Length);
        writer.Write(close ? "\r\nConnection: close\r\n\r\n"u8 : "\r\n\r\n"u8);
        writer.Write(body);
        await client.SendAsync(_scratch.AsMemory(0, writer.Length)).ConfigureAwait(false);
    }
}
