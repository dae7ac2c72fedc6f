using System.Globalization;
using System.Text.Json;

namespace SharedRuntime.Configuration;

/// <summary>
/// A subscription rule's <c>match</c>: the subset of CEL that Dapr's examples use. Comparisons of event fields with
/// literals (<c>event.type == "widget"</c>, <c>event.data.price &gt; 100</c>), joined by <c>&amp;&amp;</c> and
/// <c>||</c>, with parentheses. An empty expression always matches; a missing field never compares equal.
/// </summary>
public sealed class RouteMatch
{
    private readonly Func<JsonElement, bool> _evaluate;

    private RouteMatch(Func<JsonElement, bool> evaluate) => _evaluate = evaluate;

    public static RouteMatch Always { get; } = new(static _ => true);

    /// <summary>Whether the CloudEvent <paramref name="cloudEvent"/> matches.</summary>
    public bool Matches(JsonElement cloudEvent) => _evaluate(cloudEvent);

    public static RouteMatch Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return Always;
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
            var left = ParseAnd();
            while (Take("||"))
            {
                var (l, r) = (left, ParseAnd());
                left = e => l(e) || r(e);
            }
            return left;
        }

        private Func<JsonElement, bool> ParseAnd()
        {
            var left = ParseTerm();
            while (Take("&&"))
            {
                var (l, r) = (left, ParseTerm());
                left = e => l(e) && r(e);
            }
            return left;
        }

        private Func<JsonElement, bool> ParseTerm()
        {
            if (Take("("))
            {
                var inner = ParseOr();
                return Take(")") ? inner : throw Fail("expected ')'");
            }
            if (Take("!"))
            {
                var inner = ParseTerm();
                return e => !inner(e);
            }
            var path = ParsePath();
            string[] operators = ["==", "!=", ">=", "<=", ">", "<"];
            var op = operators.FirstOrDefault(Take) ?? throw Fail("expected a comparison (==, !=, >, >=, <, <=)");
            var literal = ParseLiteral();
            return e => Compare(Resolve(e, path), op, literal);
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

        public FormatException Fail(string problem) => new($"{problem} at position {_position + 1} of match '{text}'");
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
            (string s, JsonValueKind.String) => string.CompareOrdinal(v.GetString(), s),
            (double d, JsonValueKind.Number) => v.GetDouble().CompareTo(d),
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
}
