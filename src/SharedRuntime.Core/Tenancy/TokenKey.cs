using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace SharedRuntime.Tenancy;

/// <summary>
/// The SHA-256 of an API token, used as the lookup key. Looking up by hash reveals nothing about the token through
/// timing; the token itself is then compared in constant time.
/// </summary>
internal readonly struct TokenKey : IEquatable<TokenKey>
{
    private readonly ulong _a, _b, _c, _d;

    private TokenKey(ReadOnlySpan<byte> hash)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(hash);
        _a = words[0];
        _b = words[1];
        _c = words[2];
        _d = words[3];
    }

    public static TokenKey FromUtf8(ReadOnlySpan<byte> token)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(token, hash);
        return new TokenKey(hash);
    }

    /// <summary>The key of a token known only by its SHA-256 (32 bytes).</summary>
    public static TokenKey FromHash(ReadOnlySpan<byte> hash) =>
        hash.Length == SHA256.HashSizeInBytes ? new TokenKey(hash) : throw new ArgumentException("a SHA-256 is 32 bytes", nameof(hash));

    /// <summary>False when the token is longer than <paramref name="maxBytes"/> (then it cannot be a known one).</summary>
    public static bool TryFromString(ReadOnlySpan<char> token, int maxBytes, Span<byte> utf8, out TokenKey key, out int length)
    {
        key = default;
        length = 0;
        if (token.Length > maxBytes || !Encoding.UTF8.TryGetBytes(token, utf8, out length))
        {
            return false;
        }
        key = FromUtf8(utf8[..length]);
        return true;
    }

    public bool Equals(TokenKey other) => _a == other._a && _b == other._b && _c == other._c && _d == other._d;

    public override bool Equals(object? obj) => obj is TokenKey other && Equals(other);

    public override int GetHashCode() => (int)_a ^ (int)(_a >> 32);
}
