using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace SharedRuntime.Http.Relay;

/// <summary>
/// A connection the invoke relay hands to the HTTP server after it read some of it (a request it does not take after
/// ones it relayed): the server reads those bytes first, then the socket (<see cref="ReplayPump"/>), so it sees the
/// connection exactly as the client sent it. A connection whose first request the relay does not take is handed over
/// unread, as the server's own.
/// </summary>
internal sealed class ReplayConnection : ConnectionContext, IConnectionTransportFeature
{
    private readonly ConnectionContext _inner;

    public ReplayConnection(ConnectionContext inner, byte[] alreadyRead)
    {
        _inner = inner;
        Transport = new DuplexPipe(ReplayPump.Start(alreadyRead, inner.Transport.Input), inner.Transport.Output);
        // The server may take the transport from the features: it must get this one too.
        inner.Features.Set<IConnectionTransportFeature>(this);
    }

    public override IDuplexPipe Transport { get; set; }

    public override string ConnectionId
    {
        get => _inner.ConnectionId;
        set => _inner.ConnectionId = value;
    }

    public override IFeatureCollection Features => _inner.Features;

    public override IDictionary<object, object?> Items
    {
        get => _inner.Items;
        set => _inner.Items = value;
    }

    public override EndPoint? LocalEndPoint
    {
        get => _inner.LocalEndPoint;
        set => _inner.LocalEndPoint = value;
    }

    public override EndPoint? RemoteEndPoint
    {
        get => _inner.RemoteEndPoint;
        set => _inner.RemoteEndPoint = value;
    }

    public override CancellationToken ConnectionClosed
    {
        get => _inner.ConnectionClosed;
        set => _inner.ConnectionClosed = value;
    }

    public override void Abort(ConnectionAbortedException abortReason) => _inner.Abort(abortReason);

    public override void Abort() => _inner.Abort();

    public override ValueTask DisposeAsync() => _inner.DisposeAsync();

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}

/// <summary>
/// What the server reads of a connection handed over mid-way: the bytes the relay had read, then everything the
/// socket brings, copied through a pipe of its own as they come (at most the pipe's pause threshold ahead of the reader).
/// </summary>
internal static class ReplayPump
{
    public static PipeReader Start(byte[] alreadyRead, PipeReader socket)
    {
        var pipe = new Pipe(new PipeOptions(useSynchronizationContext: false));
        _ = PumpAsync(alreadyRead, socket, pipe.Writer);
        return pipe.Reader;
    }

    private static async Task PumpAsync(byte[] alreadyRead, PipeReader socket, PipeWriter into)
    {
        Exception? failure = null;
        try
        {
            var flushed = await into.WriteAsync(alreadyRead).ConfigureAwait(false);
            while (!flushed.IsCompleted)
            {
                var read = await socket.ReadAsync().ConfigureAwait(false);
                foreach (var segment in read.Buffer)
                {
                    into.Write(segment.Span);
                }
                socket.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted || read.IsCanceled)
                {
                    break;
                }
                flushed = await into.FlushAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            failure = ex;
        }
        await into.CompleteAsync(failure).ConfigureAwait(false);
        await socket.CompleteAsync(failure).ConfigureAwait(false);
    }
}
