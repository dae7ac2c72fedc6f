using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace SharedRuntime.Http.Relay;

/// <summary>
/// A connection the invoke relay hands to the HTTP server after it read some of it: the server reads those bytes
/// first, then the socket, so it sees the connection exactly as the client sent it.
/// </summary>
internal sealed class ReplayConnection : ConnectionContext, IConnectionTransportFeature
{
    private readonly ConnectionContext _inner;

    public ReplayConnection(ConnectionContext inner, byte[] alreadyRead)
    {
        _inner = inner;
        Transport = new DuplexPipe(new ReplayPipeReader(alreadyRead, inner.Transport.Input), inner.Transport.Output);
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
/// Reads <c>alreadyRead</c> first, then <c>inner</c>. While those bytes last, a reader that examined all of them and
/// asks for more gets them joined with what the socket brings next; once they are consumed every call goes straight
/// to the socket's reader.
/// </summary>
internal sealed class ReplayPipeReader(byte[] alreadyRead, PipeReader inner) : PipeReader
{
    private byte[]? _bytes = alreadyRead;
    private int _start;
    private bool _wantsMore;
    private bool _innerCompleted;

    private ReadResult Replayed(bool canceled = false) =>
        new(new ReadOnlySequence<byte>(_bytes!, _start, _bytes!.Length - _start), canceled, _innerCompleted);

    public override bool TryRead(out ReadResult result)
    {
        if (_bytes is null)
        {
            return inner.TryRead(out result);
        }
        if (_wantsMore)
        {
            if (!inner.TryRead(out var more))
            {
                result = default;
                return false;
            }
            Join(more);
        }
        result = Replayed();
        return true;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) =>
        _bytes is null ? inner.ReadAsync(cancellationToken) : ReadReplayedAsync(cancellationToken);

    private async ValueTask<ReadResult> ReadReplayedAsync(CancellationToken cancellationToken)
    {
        if (_wantsMore)
        {
            var more = await inner.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (more.IsCanceled)
            {
                inner.AdvanceTo(more.Buffer.Start);
                return Replayed(canceled: true);
            }
            Join(more);
        }
        return Replayed();
    }

    /// <summary>Appends what the socket brought to the bytes not yet consumed, and consumes it from the socket's reader.</summary>
    private void Join(ReadResult more)
    {
        var left = _bytes!.Length - _start;
        var joined = new byte[left + (int)more.Buffer.Length];
        _bytes.AsSpan(_start).CopyTo(joined);
        more.Buffer.CopyTo(joined.AsSpan(left));
        inner.AdvanceTo(more.Buffer.End);
        _bytes = joined;
        _start = 0;
        _innerCompleted = more.IsCompleted;
        _wantsMore = false;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (_bytes is null)
        {
            inner.AdvanceTo(consumed, examined);
            return;
        }
        _start = consumed.GetInteger();
        _wantsMore = examined.GetInteger() >= _bytes.Length;
        if (_start >= _bytes.Length)
        {
            _bytes = null; // all replayed: from now on, the socket's reader
        }
    }

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);
}
