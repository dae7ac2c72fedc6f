namespace SharedRuntime.Components.PubSub;

[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
internal sealed partial class RedisPubSubJson : System.Text.Json.Serialization.JsonSerializerContext;
