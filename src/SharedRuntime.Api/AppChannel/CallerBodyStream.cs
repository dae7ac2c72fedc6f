namespace SharedRuntime.AppChannel;

/// <summary>
/// A caller's request body as it is streamed on to the app, watched so that a failed call can be blamed on the right
/// side: a read from the caller that fails (the caller aborted or sent less than it announced) or is still waiting
/// when the call times out (the caller trickles its body) is the caller's fault, not the app's, and moves no breaker.
/// </summary>
internal sealed class CallerBodyStream(Stream inner) : Stream
{
    /// <summary>Where the stream of a call is kept on its <see cref="HttpRequestMessage"/>, for <see cref="AppChannel"/>.</summary>
    public static readonly HttpRequestOptionsKey<CallerBodyStream> Key = new("sharedruntime.caller-body");

    private volatile bool _reading;
    private volatile bool _failed;

    /// <summary>Whether reading the caller's body failed, or the caller is being waited for right now.</summary>
    public bool IsCallersFault => _failed || _reading;

    /// <summary>The caller-fault state of the body sent with <paramref name="request"/>, false when it carries none.</summary>
    public static bool BlamesCaller(HttpRequestMessage request) =>
        request.Options.TryGetValue(Key, out var body) && body.IsCallersFault;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _reading = true;
        try
        {
            return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _failed = true;
            throw;
        }
        finally
        {
            _reading = false;
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("the caller's body is read asynchronously");

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
