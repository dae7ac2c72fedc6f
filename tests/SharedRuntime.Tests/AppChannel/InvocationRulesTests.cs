using System.Text;
using SharedRuntime.AppChannel;

namespace SharedRuntime.Tests.AppChannel;

public class InvocationRulesTests
{
    [Fact]
    public void ProgrammaticSubscriptionsAreReadCaseInsensitively()
    {
        var subscriptions = SubscriptionDiscovery.Parse("orders", Encoding.UTF8.GetBytes("""
            [
              {"PubsubName":"pubsub","Topic":"a","Route":"/a"},
              {"pubsubname":"pubsub","topic":"b","routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"}],"default":"/b"},"deadLetterTopic":"dead","metadata":{"rawPayload":"true"}}
            ]
            """));
        Assert.Equal(2, subscriptions.Count);
        Assert.Equal(("a", "/a"), (subscriptions[0].Topic, subscriptions[0].Routes.Default));
        Assert.Equal(("b", "/b", "dead"), (subscriptions[1].Topic, subscriptions[1].Routes.Default, subscriptions[1].DeadLetterTopic));
        Assert.Equal("/x", subscriptions[1].Routes.Rules.Single().Path);
        Assert.All(subscriptions, s => Assert.Equal(["orders"], s.Scopes));
    }

    [Fact]
    public void AProgrammaticSubscriptionWithoutRouteIsRefused() =>
        Assert.Throws<InvalidDataException>(() => SubscriptionDiscovery.Parse("orders", """[{"pubsubname":"p","topic":"t"}]"""u8));
}
