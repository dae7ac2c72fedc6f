using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace SharedRuntime.Http;

/// <summary>The 5-byte prefix of a gRPC message: a compression flag and the message's length (big-endian).</summary>
internal static class GrpcMessagePrefix
{
    private const int Size = 5;

    /// <summary>
    /// The length of the first message of the request body, read without consuming anything, so gRPC then reads the
    /// body from its start; 0 when the body ends before a whole prefix.
    /// </summary>
    public static async ValueTask<long> PeekLengthAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.Length >= Size)
            {
                var length = Length(buffer);
                reader.AdvanceTo(buffer.Start);
                return length;
            }
            if (result.IsCompleted || result.IsCanceled)
            {
                reader.AdvanceTo(buffer.Start);
                return 0;
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static uint Length(ReadOnlySequence<byte> buffer)
    {
        Span<byte> prefix = stackalloc byte[Size];
        buffer.Slice(0, Size).CopyTo(prefix);
        return BinaryPrimitives.ReadUInt32BigEndian(prefix[1..]);
    }
}
