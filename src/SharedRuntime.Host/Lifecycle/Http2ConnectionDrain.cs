using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Connection middleware of the HTTP/2 (gRPC) listener: when the drain begins (the hand-off, or SIGTERM) every HTTP/2
/// connection is asked to close gracefully, so Kestrel sends its GOAWAY then, while this process still serves, instead
/// of when it stops; a connection whose server preface (SETTINGS) has not been sent yet is asked only once it has. After
/// Kestrel's final GOAWAY the socket stays open for a short linger, or until the client closes it.
/// </summary>
/// <remarks>
/// <para>Clients thus open their next connections to the process that took over while this one is fully alive, and
/// have left by the time Kestrel stops. Left to Kestrel's stop alone, gRPC calls failed there: Grpc.Net.Client connects
/// a socket ahead of need (its subchannel's "initial socket") and gives it to HTTP/2 only when a new connection is
/// wanted, which a GOAWAY causes. Its spare socket was still connected to this process, never having sent a byte, when
/// the stop's GOAWAYs made the client want a connection; the client checks the socket is quiet, then starts HTTP/2 on
/// it, while Kestrel's stop closes the same connection. The call failed with "did not complete the HTTP/2 handshake" or
/// "HTTP/2 error code NO_ERROR". Now the GOAWAYs go out at the hand-off, while this process still answers: the client
/// drops its spare socket with its last connection here, or starts HTTP/2 on it and gets SETTINGS, then GOAWAY, and
/// retries the call on a connection to the new process.</para>
/// <para>Kestrel answers a close request that arrives before it has read the client's preface with a GOAWAY as its
/// first frame and no SETTINGS: a client counts that as a failed handshake and fails the call it opened the connection
/// for, without retrying it. So a connection accepted in the instant before the hand-off is asked to close only after
/// Kestrel has written its SETTINGS; from then on a stream the GOAWAY does not cover is one the client retries.</para>
/// <para>A client may start a stream in the instant between the server's final GOAWAY and the close. The GOAWAY names
/// the last stream the server processed, so a client that reads it retries later streams on a new connection. Closing
/// the socket while such a stream's frames are unread makes the kernel answer with a reset, and the client may see the
/// connection end before it has read the GOAWAY: its call fails. Lingering lets the client read the GOAWAY first
/// (nginx's "lingering close" does the same). Outside a drain nothing is delayed.</para>
/// </remarks>
internal sealed class Http2ConnectionDrain(ConnectionDelegate next, ShutdownDrain drain, TimeSpan linger, TimeProvider time)
{
    public async Task OnConnectionAsync(ConnectionContext connection)
    {
        if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is { } lifetime)
        {
            var state = new CloseOnDrain(lifetime);
            connection.Transport = new PrefaceWatchingPipe(connection.Transport, state);
            // Runs at once when the drain has already begun; disposed before the linger, when the connection is done.
            using (drain.Draining.UnsafeRegister(static s => ((CloseOnDrain)s!).DrainBegan(), state))
            {
                await next(connection);
            }
        }
        else
        {
            await next(connection);
        }
        if (linger > TimeSpan.Zero && drain.ClosingConnections && !connection.ConnectionClosed.IsCancellationRequested)
        {
            // Kestrel closes the socket when this delegate returns; the client closing it first ends the wait.
            await Task.Delay(linger, time, connection.ConnectionClosed).ContinueWith(static _ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>Asks the connection to close once both the drain has begun and the server's preface has been sent.</summary>
    internal sealed class CloseOnDrain(IConnectionLifetimeNotificationFeature lifetime)
    {
        private const int PrefaceSent = 1;
        private const int Draining = 2;
        private int _state;

        public bool HasSentPreface => (Volatile.Read(ref _state) & PrefaceSent) != 0;

        public void PrefaceWasSent() => Set(PrefaceSent);

        public void DrainBegan() => Set(Draining);

        private void Set(int flag)
        {
            var before = Interlocked.Or(ref _state, flag);
            if ((before | flag) == (PrefaceSent | Draining) && (before & flag) == 0)
            {
                // Kestrel's graceful close: GOAWAY, streams in flight finish, then the connection ends.
                lifetime.RequestClose();
            }
        }
    }

    /// <summary>The connection's transport, noting the server's first flush: Kestrel's SETTINGS, its HTTP/2 preface.</summary>
    private sealed class PrefaceWatchingPipe(IDuplexPipe transport, CloseOnDrain state) : IDuplexPipe
    {
        public PipeReader Input => transport.Input;

        public PipeWriter Output { get; } = new PrefaceWatchingWriter(transport.Output, state);
    }

    private sealed class PrefaceWatchingWriter(PipeWriter output, CloseOnDrain state) : PipeWriter
    {
        private bool _flushed;

        // Kestrel flushes one write at a time. The bytes are in the pipe before the flush is asked for, so a GOAWAY
        // Kestrel writes after the first flush reaches the client after the SETTINGS.
        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            NoteFlush();
            return output.FlushAsync(cancellationToken);
        }

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            var flush = output.WriteAsync(source, cancellationToken);
            NoteFlush();
            return flush;
        }

        private void NoteFlush()
        {
            if (!_flushed)
            {
                _flushed = true;
                state.PrefaceWasSent();
            }
        }

        public override void Advance(int bytes) => output.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => output.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => output.GetSpan(sizeHint);

        public override void CancelPendingFlush() => output.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => output.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => output.CompleteAsync(exception);

        public override bool CanGetUnflushedBytes => output.CanGetUnflushedBytes;

        public override long UnflushedBytes => output.UnflushedBytes;
    }
}
