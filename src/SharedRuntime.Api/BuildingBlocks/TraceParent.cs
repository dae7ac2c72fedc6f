namespace SharedRuntime.BuildingBlocks;

/// <summary>W3C trace context <c>traceparent</c> values: <c>version-traceid-parentid-flags</c> in lowercase hex.</summary>
internal static class TraceParent
{
    /// <summary>True for a syntactically valid version-00 style value: 2-32-16-2 lowercase hex digits, version not ff, ids not all zero.</summary>
    public static bool IsValid(string value)
    {
        if (value.Length != 55 || value[2] != '-' || value[35] != '-' || value[52] != '-')
        {
            return false;
        }
        for (var i = 0; i < value.Length; i++)
        {
            if (i is 2 or 35 or 52)
            {
                continue;
            }
            if (!char.IsAsciiHexDigitLower(value[i]) && !char.IsAsciiDigit(value[i]))
            {
                return false;
            }
        }
        return !value.StartsWith("ff", StringComparison.Ordinal)
            && value.AsSpan(3, 32).ContainsAnyExcept('0')
            && value.AsSpan(36, 16).ContainsAnyExcept('0');
    }

    public static string New()
    {
        Span<byte> bytes = stackalloc byte[24];
        System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
        return $"00-{Convert.ToHexStringLower(bytes[..16])}-{Convert.ToHexStringLower(bytes[16..])}-01";
    }
}
