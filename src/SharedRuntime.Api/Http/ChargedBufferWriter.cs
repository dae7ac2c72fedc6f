using System.Buffers;
using Microsoft.AspNetCore.Http;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;

namespace SharedRuntime.Http;

/// <summary>
/// An answer built whole before any of it is sent, so that a refusal half-way leaves no half-written 200. It grows in
/// chunks (64 KiB, or larger for one large token), each charged to the request's memory before it is allocated, and
/// is sent in slices small enough for the server's back-pressure to hold.
/// </summary>
internal sealed class ChargedBufferWriter(RequestMemory? memory, string what) : IBufferWriter<byte>
{
    private const int ChunkSize = 64 * 1024;

    private readonly List<ReadOnlyMemory<byte>> _done = [];
    private byte[] _current = [];
    private int _used;
    private long _doneBytes;

    public long WrittenCount => _doneBytes + _used;

    public void Advance(int count) => _used += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _current.AsMemory(_used);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _current.AsSpan(_used);
    }

    private void Ensure(int sizeHint)
    {
        sizeHint = Math.Max(sizeHint, 1);
        if (_current.Length - _used >= sizeHint)
        {
            return;
        }
        if (_used > 0)
        {
            _done.Add(_current.AsMemory(0, _used));
            _doneBytes += _used;
        }
        var size = Math.Max(ChunkSize, sizeHint);
        memory.Charge(size, what);
        _current = new byte[size];
        _used = 0;
    }

    /// <summary>Sends what was written as the response body, with its length.</summary>
    public async Task WriteToAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        response.ContentLength = WrittenCount;
        foreach (var chunk in _done)
        {
            await response.WriteInSlicesAsync(chunk, cancellationToken).ConfigureAwait(false);
        }
        await response.WriteInSlicesAsync(_current.AsMemory(0, _used), cancellationToken).ConfigureAwait(false);
    }
}
