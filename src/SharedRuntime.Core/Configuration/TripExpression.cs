using System.Globalization;

namespace SharedRuntime.Configuration;

/// <summary>Counts a circuit breaker keeps between trips (Dapr's names).</summary>
public readonly record struct BreakerCounts(long Requests, long TotalSuccesses, long TotalFailures, long ConsecutiveSuccesses, long ConsecutiveFailures);

/// <summary>
/// A circuit breaker's <c>trip</c> expression as Dapr writes it: comparisons of the counts with numbers, joined
/// by <c>&amp;&amp;</c> and <c>||</c>, with parentheses, for example <c>consecutiveFailures &gt; 5</c>. Parsing is
/// bounded like <see cref="RouteMatch"/>: at most <see cref="MaxLength"/> characters and <see cref="MaxDepth"/> nested
/// parentheses, with chains of <c>&amp;&amp;</c> and <c>||</c> evaluated in a loop.
/// </summary>
public sealed class TripExpression
{
    /// <summary>Longest expression accepted, in characters.</summary>
    public const int MaxLength = RouteMatch.MaxLength;

    /// <summary>Deepest nesting of parentheses accepted.</summary>
    public const int MaxDepth = RouteMatch.MaxDepth;

    private readonly Func<BreakerCounts, bool> _evaluate;

    private TripExpression(string text, Func<BreakerCounts, bool> evaluate)
    {
        Text = text;
        _evaluate = evaluate;
    }

    public string Text { get; }

    public bool ShouldTrip(BreakerCounts counts) => _evaluate(counts);

    public override string ToString() => Text;

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static TripExpression Parse(string text)
    {
        if (text.Length > MaxLength)
        {
            throw new FormatException($"the trip expression is {text.Length} characters long, longer than the {MaxLength} allowed");
        }
        var parser = new Parser(text);
        var result = parser.ParseOr();
        parser.SkipSpaces();
        if (!parser.AtEnd)
        {
            throw parser.Fail("unexpected text");
        }
        return new TripExpression(text, result);
    }

    private sealed class Parser(string text)
    {
        private int _depth;

        public int Position { get; private set; }

        public bool AtEnd => Position >= text.Length;

        public void SkipSpaces()
        {
            while (!AtEnd && char.IsWhiteSpace(text[Position]))
            {
                Position++;
            }
        }

        private bool Take(string token)
        {
            SkipSpaces();
            if (string.CompareOrdinal(text, Position, token, 0, token.Length) == 0)
            {
                Position += token.Length;
                return true;
            }
            return false;
        }

        public Func<BreakerCounts, bool> ParseOr()
        {
            var first = ParseAnd();
            if (!Take("||"))
            {
                return first;
            }
            List<Func<BreakerCounts, bool>> terms = [first];
            do
            {
                terms.Add(ParseAnd());
            }
            while (Take("||"));
            var all = terms.ToArray();
            return c =>
            {
                foreach (var term in all)
                {
                    if (term(c))
                    {
                        return true;
                    }
                }
                return false;
            };
        }

        private Func<BreakerCounts, bool> ParseAnd()
        {
            var first = ParseTerm();
            if (!Take("&&"))
            {
                return first;
            }
            List<Func<BreakerCounts, bool>> terms = [first];
            do
            {
                terms.Add(ParseTerm());
            }
            while (Take("&&"));
            var all = terms.ToArray();
            return c =>
            {
                foreach (var term in all)
                {
                    if (!term(c))
                    {
                        return false;
                    }
                }
                return true;
            };
        }

        private Func<BreakerCounts, bool> ParseTerm()
        {
            if (Take("("))
            {
                if (++_depth > MaxDepth)
                {
                    throw Fail($"parentheses nested more than {MaxDepth} deep");
                }
                var inner = ParseOr();
                _depth--;
                if (!Take(")"))
                {
                    throw Fail("expected ')'");
                }
                return inner;
            }
            var left = ParseOperand();
            string[] operators = [">=", "<=", "==", "!=", ">", "<"];
            var op = operators.FirstOrDefault(Take) ?? throw Fail("expected a comparison (>, >=, <, <=, ==, !=)");
            var right = ParseOperand();
            return op switch
            {
                ">=" => c => left(c) >= right(c),
                "<=" => c => left(c) <= right(c),
                "==" => c => left(c) == right(c),
                "!=" => c => left(c) != right(c),
                ">" => c => left(c) > right(c),
                _ => c => left(c) < right(c),
            };
        }

        private Func<BreakerCounts, long> ParseOperand()
        {
            SkipSpaces();
            var start = Position;
            while (!AtEnd && char.IsAsciiLetterOrDigit(text[Position]))
            {
                Position++;
            }
            var word = text[start..Position];
            if (long.TryParse(word, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
            {
                return _ => number;
            }
            return word switch
            {
                "requests" => static c => c.Requests,
                "totalSuccesses" => static c => c.TotalSuccesses,
                "totalFailures" => static c => c.TotalFailures,
                "consecutiveSuccesses" => static c => c.ConsecutiveSuccesses,
                "consecutiveFailures" => static c => c.ConsecutiveFailures,
                _ => throw Fail(word.Length == 0
                    ? "expected a number or one of requests, totalSuccesses, totalFailures, consecutiveSuccesses, consecutiveFailures"
                    : $"unknown name '{word}'; known are requests, totalSuccesses, totalFailures, consecutiveSuccesses, consecutiveFailures"),
            };
        }

        /// <summary>The problem and where; a long expression is quoted only in part.</summary>
        public FormatException Fail(string problem) =>
            new($"{problem} at position {Position + 1} of trip expression '{(text.Length <= 100 ? text : string.Concat(text.AsSpan(0, 100), "..."))}'");
    }
}
