using System.Text.Json.Nodes;
using CsCheck;

namespace SharedRuntime.FuzzTests.Generators;

/// <summary>
/// The attacker app's answer to <c>GET /dapr/subscribe</c>: a few subscriptions to the topics it publishes to, with
/// generated routes, rules (match expressions a few levels deep, some malformed), metadata and dead-letter topics.
/// </summary>
internal static class SubscriptionAnswers
{
    private static readonly Gen<string> Operand = Gen.OneOf(
        Gen.Const("event.type"), Gen.Const("event.data.a"), Gen.Const("event.source"), Gen.Const("event.data"), Gen.Const("1"),
        Gen.Const("\"x\""), Gen.Const("true"), Gen.String[Gen.Char.AlphaNumeric, 1, 8]);

    private static readonly Gen<string> Match = Gen.Recursive<string>((depth, self) => depth >= 3
        ? Gen.Select(Operand, Gen.OneOf(Gen.Const("=="), Gen.Const("!="), Gen.Const(">"), Gen.Const("<="), Gen.Const("in"), Gen.Const("")), Operand, (a, op, b) => $"{a} {op} {b}")
        : Gen.Frequency(
            (3, Gen.Select(Operand, Gen.OneOf(Gen.Const("=="), Gen.Const("!=")), Operand, (a, op, b) => $"{a} {op} {b}")),
            (1, Gen.Select(self, Gen.OneOf(Gen.Const("&&"), Gen.Const("||")), self, (a, op, b) => $"{a} {op} {b}")),
            (1, self.Select(e => $"!({e})")),
            (1, FuzzText.Any)));

    private static readonly Gen<string> Path = Gen.Frequency((4, Gen.OneOf(Gen.Const("/events"), Gen.Const("/fail"), Gen.Const("/slow"))), (1, FuzzText.Any));

    private static readonly Gen<JsonNode> Subscription = Gen.Select(
        Gen.Frequency((6, Gen.Const("pubsub")), (1, FuzzText.Any)),
        Gen.Frequency((6, Gen.OneOf(Gen.Const("fuzz"), Gen.Const("fuzz-events"))), (1, FuzzText.Any)),
        Gen.Select(Match, Path).Array[0, 4],
        Path,
        Gen.Bool,
        Gen.Frequency((3, Gen.Const("")), (1, Gen.Const("deadletters")), (1, FuzzText.Any)),
        (pubsub, topic, rules, route, v2, deadLetter) =>
        {
            var subscription = new JsonObject { ["pubsubname"] = pubsub, ["topic"] = topic };
            if (v2)
            {
                subscription["routes"] = new JsonObject
                {
                    ["rules"] = new JsonArray(rules.Select(r => (JsonNode)new JsonObject { ["match"] = r.Item1, ["path"] = r.Item2 }).ToArray()),
                    ["default"] = route,
                };
            }
            else
            {
                subscription["route"] = route;
            }
            if (deadLetter.Length > 0)
            {
                subscription["deadLetterTopic"] = deadLetter;
            }
            return (JsonNode)subscription;
        });

    public static string Generate(ulong seed) =>
        new JsonArray(Subscription.Array[1, 6].Generate(new PCG(0, seed), null!, out _)).ToJsonString();
}
