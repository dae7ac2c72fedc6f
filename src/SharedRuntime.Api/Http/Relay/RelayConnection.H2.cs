using System.Net.Sockets;
using System.Runtime.CompilerServices;
using SharedRuntime.AppChannel;
using SharedRuntime.Http.Relay.H2;

namespace SharedRuntime.Http.Relay;

/// <summary>
/// Relaying to an app that speaks h2c: the request goes out as a stream on one of the app's shared HTTP/2 connections
/// (<see cref="H2Connection"/>), and the answer is written to the caller as HTTP/1.1, its body copied as it comes.
/// </summary>
internal sealed partial class RelayConnection
{
    /// <summary>The call's stream while it runs: the client watch and the timeout end it.</summary>
    private H2Stream? _stream;
    private bool _h2Ended;

    /// <summary>
    /// Opens a stream for the request written in the scratch buffer and waits for the app's final headers. A request the
    /// app surely did not handle (its connection closed or went away first, or it refused the stream) is sent once more,
    /// on another connection. The channel's timeout resets the stream when the app takes longer.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Exchange> SendH2Async(RelayCall call, int requestLength)
    {
        _timeout.CancelAfter(call.Channel.Config.Timeout);
        var toHead = _head.HeadRequest(_buffer.AsSpan(_start));
        var headEnd = RequestHead.FindEnd(_scratch.AsSpan(0, requestLength));
        for (var attempt = 0; ; attempt++)
        {
            H2Stream? stream;
            string? problem;
            try
            {
                (stream, problem) = await call.Connections.OpenStreamAsync(_scratch.AsMemory(0, requestLength), headEnd, toHead, _timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_timeout.IsCancellationRequested)
            {
                return new Exchange(null, default, 0, 0, TimedOut(call));
            }
            catch (OperationCanceledException)
            {
                return new Exchange(null, default, 0, 0, $"the app could not be reached at {call.Connections.Authority} within {AppConnections.ConnectTimeout.TotalSeconds:0}s");
            }
            catch (SocketException ex)
            {
                return new Exchange(null, default, 0, 0, $"{ex.Message} ({call.Connections.Authority})");
            }
            catch (ObjectDisposedException)
            {
                return new Exchange(null, default, 0, 0, "the app's channel was replaced while the call started");
            }
            if (stream is null)
            {
                return new Exchange(null, default, 0, 0, problem);
            }
            Volatile.Write(ref _stream, stream);
            if (_clientGone)
            {
                stream.Cancel("the caller went away");
            }
            using (_timeout.Token.UnsafeRegister(static state => ((H2Stream)state!).Cancel("the app did not answer in time"), stream))
            {
                await stream.WaitForHeadersAsync().ConfigureAwait(false);
            }
            if (stream.Failure(out var retryable) is { } failure)
            {
                Volatile.Write(ref _stream, null);
                stream.Dispose();
                if (_clientGone)
                {
                    return new Exchange(null, default, 0, 0, null, ClientGone: true);
                }
                if (_timeout.IsCancellationRequested)
                {
                    return new Exchange(null, default, 0, 0, TimedOut(call));
                }
                if (retryable && attempt == 0)
                {
                    continue;
                }
                return new Exchange(null, default, 0, 0, failure);
            }
            var head = ResponseHead.Parse(stream.Head(out _h2Ended), toHead);
            if (head.Problem is { } invalid)
            {
                Volatile.Write(ref _stream, null);
                stream.Dispose();
                return new Exchange(null, default, 0, 0, $"the app's answer is not valid HTTP: {invalid}");
            }
            return new Exchange(null, head, 0, 0, null);
        }
    }

    /// <summary>
    /// Writes the app's answer to the client: the head made of its headers, then its body as it comes (as chunks when the
    /// app gave no length), in as few sends as what has come allows. A body that breaks off, overruns its length or
    /// stops for the channel's timeout ends the client's connection, whose answer cannot be completed.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask CopyH2AnswerAsync(RelayCall call, ResponseHead head, bool close)
    {
        var stream = _stream!;
        var timeout = call.Channel.Config.Timeout;
        using var cancel = _timeout.Token.UnsafeRegister(static state => ((H2Stream)state!).Cancel("the app stopped in the middle of its answer"), stream);
        var output = head.Write(stream.Head(out _), _scratch, close);
        var chunked = head.Framing is BodyFraming.UntilClose;
        var remaining = head.Framing == BodyFraming.Length ? head.ContentLength : 0;
        var ended = _h2Ended;
        while (!ended)
        {
            _timeout.CancelAfter(timeout);
            await stream.WaitForDataAsync().ConfigureAwait(false);
            var room = _scratch.Length - output - (chunked ? 12 : 0);
            var taken = 0;
            if (room > 0)
            {
                var at = output + (chunked ? HeadWriter.HexLength(Math.Min(room, stream.Available)) + 2 : 0);
                taken = stream.Take(_scratch.AsSpan(at, Math.Min(room, stream.Available)), out ended);
                if (taken > 0)
                {
                    if (chunked)
                    {
                        var writer = new HeadWriter(_scratch.AsSpan(output));
                        writer.WriteHex(taken);
                        writer.Write("\r\n"u8);
                        output = at + taken;
                        "\r\n"u8.CopyTo(_scratch.AsSpan(output));
                        output += 2;
                    }
                    else
                    {
                        output += taken;
                    }
                }
            }
            else
            {
                ended = false;
            }
            if (taken == 0 && !ended && room > 0 && stream.Failure(out _) is { } failure)
            {
                throw new H2ProtocolException(failure);
            }
            if (head.Framing == BodyFraming.Length)
            {
                if (taken > remaining)
                {
                    throw new H2ProtocolException("the app sent more body than its content-length says");
                }
                remaining -= taken;
            }
            else if (head.Framing == BodyFraming.None && taken > 0)
            {
                throw new H2ProtocolException("the app sent a body with an answer that has none");
            }
            if (!ended && output > 0 && (stream.Available == 0 || room <= 0))
            {
                // Nothing more is here yet (or the buffer is full): what the client can have goes out before waiting.
                await client.SendAsync(_scratch.AsMemory(0, output)).ConfigureAwait(false);
                output = 0;
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
    }

    private void EndStream()
    {
        if (Interlocked.Exchange(ref _stream, null) is { } stream)
        {
            stream.Dispose();
        }
    }
}
