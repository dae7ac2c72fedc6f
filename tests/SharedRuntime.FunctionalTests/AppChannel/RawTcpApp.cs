using System.Net;
using System.Net.Sockets;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// An app served straight off TCP on 127.0.0.1, so a test can write its answers byte for byte: each connection it
/// accepts is given to <see cref="ServeAsync"/>, until the app is disposed.
/// </summary>
internal abstract class RawTcpApp : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

    public Uri Address => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

    /// <summary>Starts listening and accepting.</summary>
    protected void Listen()
    {
        _listener.Start();
        _ = AcceptAsync();
    }

    private int _accepted;

    /// <summary>Connections accepted so far.</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    private async Task AcceptAsync()
    {
        while (true)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync();
            }
            catch (Exception)
            {
                return;
            }
            Interlocked.Increment(ref _accepted);
            _ = ServeAsync(client);
        }
    }

    /// <summary>Serves one accepted connection; it is the method's to close.</summary>
    protected abstract Task ServeAsync(TcpClient client);

    public void Dispose() => _listener.Stop();
}
