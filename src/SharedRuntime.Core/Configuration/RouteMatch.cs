using System.Globalization;
using System.Text.Json;

namespace SharedRuntime.Configuration;

/// <summary>
/// A subscription rule's <c>match</c>: the subset of CEL that Dapr's examples use. Comparisons of event fields with
/// literals (<c>event.type == "widget"</c>, <c>event.data.price &gt; 100</c>), joined by <c>&amp;&amp;</c> and
/// <c>||</c>, with parentheses. An empty expression always matches; a missing field never compares equal.
/// </summary>
/// <remarks>
/// Match expressions come from apps (<c>GET /dapr/subscribe</c>), so parsing is bounded: at most
/// <see cref="MaxLength"/> characters and <see cref="MaxDepth"/> nested <c>!</c> or parentheses. Chains of
/// <c>&amp;&amp;</c> and <c>||</c> are kept flat and evaluated in a loop, so evaluation never recurses deeper than the
/// nesting either. Anything else is a <see cref="FormatException"/> saying what is wrong.
/// </remarks>
internal sealed class RouteMatch
{
    /// <summary>Longest expression accepted, in characters.</summary>
    public const int MaxLength = 4096;

    /// <summary>Deepest nesting of <c>!</c> and parentheses accepted.</summary>
    public const int MaxDepth = 32;

    private readonly Func<JsonElement, bool> _evaluate;

    private RouteMatch(Func<JsonElement, bool> evaluate) => _evaluate = evaluate;

    public static RouteMatch Always { get; } = new(static _ => true);

    /// <summary>Whether the CloudEvent <paramref name="cloudEvent"/> matches.</summary>
    public bool Matches(JsonElement cloudEvent) => _evaluate(cloudEvent);

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static RouteMatch Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return Always;
        }
        if (text.Length > MaxLength)
        {
            throw new FormatException($"the match is {text.Length} characters long, longer than the {MaxLength} allowed");
        }
        var parser = new Parser(text);
        var result = parser.ParseOr();
        if (!parser.AtEnd)
        {
            throw parser.Fail("unexpected text");
        }
        return new RouteMatch(result);
    }

    private sealed class Parser(string text)
    {
        private int _position;
        private int _depth;

        public bool AtEnd
        {
            get
            {
                SkipSpaces();
                return _position >= text.Length;
            }
        }

        private void SkipSpaces()
        {
            while (_position < text.Length && char.IsWhiteSpace(text[_position]))
            {
                _position++;
            }
        }

        private bool Take(string token)
        {
            SkipSpaces();
            if (string.CompareOrdinal(text, _position, token, 0, token.Length) == 0)
            {
                _position += token.Length;
                return true;
            }
            return false;
        }

        public Func<JsonElement, bool> ParseOr()
        {
            var first = ParseAnd();
            if (!Take("||"))
            {
                return first;
            }
            List<Func<JsonElement, bool>> terms = [first];
            do
            {
                terms.Add(ParseAnd());
            }
            while (Take("||"));
            var all = terms.ToArray();
            return e =>
            {
                foreach (var term in all)
                {
                    if (term(e))
                    {
                        return true;
                    }
                }
                return false;
            };
        }

        private Func<JsonElement, bool> ParseAnd()
        {
            var first = ParseTerm();
            if (!Take("&&"))
            {
                return first;
            }
            List<Func<JsonElement, bool>> terms = [first];
            do
            {
                terms.Add(ParseTerm());
            }
            while (Take("&&"));
            var all = terms.ToArray();
            return e =>
            {
                foreach (var term in all)
                {
                    if (!term(e))
                    {
                        return false;
                    }
                }
                return true;
            };
        }

        private Func<JsonElement, bool> ParseTerm()
        {
            if (Take("("))
            {
                Enter();
                var inner = ParseOr();
                _depth--;
                return Take(")") ? inner : throw Fail("expected ')'");
            }
            if (Take("!"))
            {
                Enter();
                var inner = ParseTerm();
                _depth--;
                return e => !inner(e);
            }
            var path = ParsePath();
            string[] operators = ["==", "!=", ">=", "<=", ">", "<"];
            var op = operators.FirstOrDefault(Take) ?? throw Fail("expected a comparison (==, !=, >, >=, <, <=)");
            var literal = ParseLiteral();
            return e => Compare(Resolve(e, path), op, literal);
        }

        private void Enter()
        {
            if (++_depth > MaxDepth)
            {
                throw Fail($"'!' and parentheses nested more than {MaxDepth} deep");
            }
        }

        private string[] ParsePath()
        {
            SkipSpaces();
            var start = _position;
            while (_position < text.Length && (char.IsAsciiLetterOrDigit(text[_position]) || text[_position] is '.' or '_'))
            {
                _position++;
            }
            var parts = text[start.._position].Split('.');
            if (parts.Length < 2 || parts[0] != "event" || parts.Any(p => p.Length == 0))
            {
                throw Fail("expected a field of the event, like event.type or event.data.name");
            }
            return parts[1..];
        }

        private object ParseLiteral()
        {
            SkipSpaces();
            if (_position < text.Length && text[_position] is '"' or '\'')
            {
                var quote = text[_position];
                var end = text.IndexOf(quote, _position + 1);
                if (end < 0)
                {
                    throw Fail("unterminated string");
                }
                var value = text[(_position + 1)..end];
                _position = end + 1;
                return value;
            }
            if (Take("true"))
            {
                return true;
            }
            if (Take("false"))
            {
                return false;
            }
            var start = _position;
            while (_position < text.Length && (char.IsAsciiDigit(text[_position]) || text[_position] is '.' or '-' or '+' or 'e' or 'E'))
            {
                _position++;
            }
            return double.TryParse(text.AsSpan(start, _position - start), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                ? number
                : throw Fail("expected a string, a number, true or false");
        }

        /// <summary>The problem and where; a long expression is quoted only in part.</summary>
        public FormatException Fail(string problem) =>
            new($"{problem} at position {_position + 1} of match '{(text.Length <= 100 ? text : string.Concat(text.AsSpan(0, 100), "..."))}'");
    }

    private static JsonElement? Resolve(JsonElement element, string[] path)
    {
        foreach (var name in path)
        {
            if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out element))
            {
                return null;
            }
        }
        return element;
    }

    private static bool Compare(JsonElement? value, string op, object literal)
    {
        if (value is not { } v)
        {
            return op == "!=";
        }
        int? order = (literal, v.ValueKind) switch
        {
            (string s, JsonValueKind.String) => TryGetString(v) is { } text ? string.CompareOrdinal(text, s) : null,
            (double d, JsonValueKind.Number) => v.TryGetDouble(out var number) ? number.CompareTo(d) : null,
            (bool b, JsonValueKind.True or JsonValueKind.False) => v.GetBoolean() == b ? 0 : 1,
            _ => null,
        };
        if (order is not { } o)
        {
            return op == "!=";
        }
        return op switch
        {
            "==" => o == 0,
            "!=" => o != 0,
            ">" => o > 0,
            ">=" => o >= 0,
            "<" => o < 0,
            _ => o <= 0,
        };
    }

    /// <summary>The string, or null when its escapes do not make valid UTF-16 (a lone surrogate): such a value compares with nothing.</summary>
    private static string? TryGetString(JsonElement value)
    {
        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}
