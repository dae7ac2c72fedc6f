using Microsoft.AspNetCore.Connections;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Connection middleware of the HTTP/2 (gRPC) listener: during a drain, keeps a connection's socket open for a short
/// linger after Kestrel has written its final GOAWAY, or until the client closes it, instead of closing it at once.
/// </summary>
/// <remarks>
/// A client may start a stream in the instant between the server's final GOAWAY and the close. The GOAWAY names the last
/// stream the server processed, so a client that reads it retries later streams on a new connection, which reaches the
/// process that took over. Closing the socket while such a stream's frames are unread makes the kernel answer with a
/// reset, and the client may see the connection end before it has read the GOAWAY: its call fails. Lingering lets the
/// client read the GOAWAY first (nginx's "lingering close" does the same). Outside a drain nothing is delayed.
/// </remarks>
internal sealed class Http2LingeringClose(ConnectionDelegate next, ShutdownDrain drain, TimeSpan linger, TimeProvider time)
{
    public async Task OnConnectionAsync(ConnectionContext connection)
    {
        await next(connection);
        if (drain.ClosingConnections && !connection.ConnectionClosed.IsCancellationRequested)
        {
            // Kestrel closes the socket when this delegate returns; the client closing it first ends the wait.
            await Task.Delay(linger, time, connection.ConnectionClosed).ContinueWith(static _ => { }, TaskScheduler.Default);
        }
    }
}
