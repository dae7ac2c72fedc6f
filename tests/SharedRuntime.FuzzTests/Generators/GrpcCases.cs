using System.Text;
using CsCheck;
using Google.Protobuf;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FuzzTests.Generators;

/// <summary>One generated gRPC call: the method of <c>dapr.proto.runtime.v1.Dapr</c> and the message bytes as sent.</summary>
internal sealed record GrpcCase(string Method, bool ServerStreaming, byte[] Payload, IReadOnlyList<KeyValuePair<string, string>> Metadata, string? Token)
{
    public override string ToString()
    {
        var text = new StringBuilder($"gRPC {Method}{(ServerStreaming ? " (server streaming)" : "")}");
        text.Append(Token is null ? "\n  (no dapr-api-token)" : Token == FuzzNode.AttackerToken ? "" : $"\n  dapr-api-token: {Token}");
        foreach (var (name, value) in Metadata)
        {
            text.Append($"\n  {name}: {FuzzText.PrintableHeader(value)}");
        }
        text.Append($"\n  message (base64): {Convert.ToBase64String(Payload.AsSpan(0, Math.Min(Payload.Length, 600)))}{(Payload.Length > 600 ? $"... ({Payload.Length} bytes)" : "")}");
        return text.ToString();
    }
}

/// <summary>
/// Calls of every RPC the runtime serves (and some it does not), with messages built from the Dapr.Protos types with
/// random field values, or those messages' bytes mutated, or random bytes; with random metadata.
/// </summary>
internal static class GrpcCases
{
    private const string MetadataKeyChars = "abcdefghijklmnopqrstuvwxyz0123456789-_.";

    private static readonly Gen<string> Str = FuzzText.Any;
    private static readonly Gen<string> StoreName = Gen.Frequency((6, Gen.OneOf(Gen.Const("statestore"), Gen.Const("durable"))), (1, Gen.Const("nosuch")), (1, Str));
    private static readonly Gen<string> Key = Gen.Frequency((5, Gen.OneOf(Gen.Const("k1"), Gen.Const("k2"), Gen.Const("big"), Gen.Const("bystander-probe"))), (3, Str));
    private static readonly Gen<string> Topic = Gen.Frequency((5, Gen.OneOf(Gen.Const("fuzz"), Gen.Const("fuzz-events"), Gen.Const("bystander-orders"))), (2, Str));
    private static readonly Gen<ByteString> Bytes = Gen.Frequency(
        (4, FuzzText.Json.Select(FuzzText.Utf8)),
        (2, FuzzText.RandomBytes),
        (1, Gen.Const(Array.Empty<byte>())))
        .Select(ByteString.CopyFrom);

    private static readonly Gen<Dictionary<string, string>> Map = Gen.Frequency(
        (3, Gen.Const(() => new Dictionary<string, string>())),
        (2, Gen.Select(FuzzText.MetadataKey.Array[1, 5], Str.Array[5], (keys, values) => keys.Select((k, i) => (k, values[i])).DistinctBy(p => p.k).ToDictionary(p => p.k, p => p.Item2))));

    private static readonly Gen<int> EnumValue = Gen.Frequency((6, Gen.Int[0, 2]), (1, Gen.Int));

    private static readonly Gen<Autogen.StateOptions?> Options = Gen.Frequency(
        (2, Gen.Const(default(Autogen.StateOptions?))),
        (1, Gen.Select(EnumValue, EnumValue, (c, s) => (Autogen.StateOptions?)new Autogen.StateOptions
        {
            Concurrency = (Autogen.StateOptions.Types.StateConcurrency)c,
            Consistency = (Autogen.StateOptions.Types.StateConsistency)s,
        })));

    private static readonly Gen<Autogen.Etag?> Etag = Gen.Frequency(
        (3, Gen.Const(default(Autogen.Etag?))),
        (1, Str.Select(s => (Autogen.Etag?)new Autogen.Etag { Value = s })));

    private static readonly Gen<Autogen.StateItem> StateItem = Gen.Select(Key, Bytes, Etag, Map, Options, (key, value, etag, metadata, options) =>
    {
        var item = new Autogen.StateItem { Key = key, Value = value, Etag = etag, Options = options };
        item.Metadata.Add(metadata);
        return item;
    });

    private static Gen<(string Method, bool Streaming, IMessage Message)> Rpc<T>(string method, Gen<T> message, bool streaming = false) where T : IMessage =>
        message.Select(m => (method, streaming, (IMessage)m));

    private static readonly Gen<(string Method, bool Streaming, IMessage Message)> Messages = Gen.Frequency(
        (5, Rpc("GetState", Gen.Select(StoreName, Key, EnumValue, Map, (s, k, c, m) =>
            With(new Autogen.GetStateRequest { StoreName = s, Key = k, Consistency = (Autogen.StateOptions.Types.StateConsistency)c }, r => r.Metadata.Add(m))))),
        (4, Rpc("GetBulkState", Gen.Select(StoreName, Gen.Frequency((8, Key.Array[0, 20]), (1, Key.Array[100, 200])), Gen.Int, Map, (s, k, p, m) =>
            With(new Autogen.GetBulkStateRequest { StoreName = s, Parallelism = p }, r => { r.Keys.Add(k); r.Metadata.Add(m); })))),
        (6, Rpc("SaveState", Gen.Select(StoreName, StateItem.Array[0, 5], (s, items) => With(new Autogen.SaveStateRequest { StoreName = s }, r => r.States.Add(items))))),
        (3, Rpc("DeleteState", Gen.Select(StoreName, Key, Etag, Options, Map, (s, k, e, o, m) =>
            With(new Autogen.DeleteStateRequest { StoreName = s, Key = k, Etag = e, Options = o }, r => r.Metadata.Add(m))))),
        (2, Rpc("DeleteBulkState", Gen.Select(StoreName, StateItem.Array[0, 5], (s, items) => With(new Autogen.DeleteBulkStateRequest { StoreName = s }, r => r.States.Add(items))))),
        (4, Rpc("ExecuteStateTransaction", Gen.Select(StoreName,
            Gen.Select(Gen.Frequency((4, Gen.OneOf(Gen.Const("upsert"), Gen.Const("delete"))), (1, Str)), StateItem.Null(0.1),
                (op, item) => new Autogen.TransactionalStateOperation { OperationType = op, Request = item }).Array[0, 6],
            Map, (s, ops, m) => With(new Autogen.ExecuteStateTransactionRequest { StoreName = s }, r => { r.Operations.Add(ops); r.Metadata.Add(m); })))),
        (5, Rpc("PublishEvent", Gen.Select(Gen.Frequency((6, Gen.Const("pubsub")), (1, Str)), Topic, Bytes, Gen.OneOf(Gen.Const(""), Gen.Const("application/json"), Gen.Const("application/cloudevents+json"), Str), Map,
            (p, t, d, ct, m) => With(new Autogen.PublishEventRequest { PubsubName = p, Topic = t, Data = d, DataContentType = ct }, r => r.Metadata.Add(m))))),
        (2, Rpc("BulkPublishEvent", BulkPublish)),
        (1, Rpc("BulkPublishEventAlpha1", BulkPublish)),
        (4, Rpc("InvokeService", Gen.Select(Gen.Frequency((6, Gen.OneOf(Gen.Const("attacker"), Gen.Const("bystander"))), (1, Gen.Const("nosuch")), (1, Str)),
            Gen.Frequency((4, Gen.OneOf(Gen.Const("echo"), Gen.Const("fail"), Gen.Const("slow"), Gen.Const("dapr/subscribe"))), (3, Str)),
            Bytes, Gen.OneOf(Gen.Const(""), Gen.Const("application/json"), Str), EnumValue, Str,
            (id, method, data, ct, verb, query) => new Autogen.InvokeServiceRequest
            {
                Id = id,
                Message = new Dapr.Client.Autogen.Grpc.v1.InvokeRequest
                {
                    Method = method,
                    Data = new Google.Protobuf.WellKnownTypes.Any { Value = data },
                    ContentType = ct,
                    HttpExtension = new Autogen.HTTPExtension { Verb = (Autogen.HTTPExtension.Types.Verb)(verb % 10), Querystring = query },
                },
            }))),
        (4, Rpc("InvokeBinding", Gen.Select(Gen.Frequency((6, Gen.Const("appbinding")), (1, Str)), Bytes, Map,
            Gen.Frequency((4, Gen.OneOf(Gen.Const("create"), Gen.Const("get"), Gen.Const("delete"))), (1, Str)),
            (n, d, m, op) => With(new Autogen.InvokeBindingRequest { Name = n, Data = d, Operation = op }, r => r.Metadata.Add(m))))),
        (2, Rpc("GetSecret", Gen.Select(Gen.Frequency((6, Gen.Const("envsecrets")), (1, Str)), Gen.Frequency((3, Gen.OneOf(Gen.Const("TOKEN"), Gen.Const("PATH"))), (1, Str)), Map,
            (s, k, m) => With(new Autogen.GetSecretRequest { StoreName = s, Key = k }, r => r.Metadata.Add(m))))),
        (1, Rpc("GetBulkSecret", Gen.Select(Gen.Frequency((6, Gen.Const("envsecrets")), (1, Str)), Map, (s, m) => With(new Autogen.GetBulkSecretRequest { StoreName = s }, r => r.Metadata.Add(m))))),
        (1, Rpc("GetMetadata", Gen.Const(() => new Autogen.GetMetadataRequest()))),
        (2, Rpc("SetMetadata", Gen.Select(Str, Str, (k, v) => new Autogen.SetMetadataRequest { Key = k, Value = v }))),
        (2, Rpc("GetConfiguration", Configuration)),
        (1, Rpc("GetConfigurationAlpha1", Configuration)),
        (1, Rpc("SubscribeConfiguration", SubscribeConfiguration, streaming: true)),
        (1, Rpc("SubscribeConfigurationAlpha1", SubscribeConfiguration, streaming: true)),
        (1, Rpc("UnsubscribeConfiguration", Gen.Select(Str, Str, (s, id) => new Autogen.UnsubscribeConfigurationRequest { StoreName = s, Id = id }))),
        (1, Rpc("UnsubscribeConfigurationAlpha1", Gen.Select(Str, Str, (s, id) => new Autogen.UnsubscribeConfigurationRequest { StoreName = s, Id = id }))),
        (3, Rpc("TryLockAlpha1", Gen.Select(Gen.Frequency((6, Gen.Const("lockstore")), (1, Str)), Key, Gen.OneOf(Gen.Const("owner"), Str), Gen.Frequency((3, Gen.Int[-2, 100]), (1, Gen.Int)),
            (s, id, owner, expiry) => new Autogen.TryLockRequest { StoreName = s, ResourceId = id, LockOwner = owner, ExpiryInSeconds = expiry }))),
        (2, Rpc("UnlockAlpha1", Gen.Select(Gen.Frequency((6, Gen.Const("lockstore")), (1, Str)), Key, Gen.OneOf(Gen.Const("owner"), Str),
            (s, id, owner) => new Autogen.UnlockRequest { StoreName = s, ResourceId = id, LockOwner = owner }))),
        (1, Rpc("Shutdown", Gen.Const(() => new Autogen.ShutdownRequest()))),
        (1, Rpc("QueryStateAlpha1", Gen.Select(StoreName, Str, Map, (s, q, m) => With(new Autogen.QueryStateRequest { StoreName = s, Query = q }, r => r.Metadata.Add(m))))),
        (1, Gen.String[Gen.Char.AlphaNumeric, 1, 30].Select(name => (name, false, (IMessage)new Autogen.GetMetadataRequest()))));

    private static Gen<Autogen.BulkPublishRequest> BulkPublish => Gen.Select(Gen.Frequency((6, Gen.Const("pubsub")), (1, Str)), Topic,
        Gen.Select(Gen.OneOf(Gen.Const("1"), Gen.Const("2"), Gen.Const("3"), Str), Bytes, Gen.OneOf(Gen.Const(""), Gen.Const("application/json"), Str), Map,
            (id, e, ct, m) => With(new Autogen.BulkPublishRequestEntry { EntryId = id, Event = e, ContentType = ct }, r => r.Metadata.Add(m))).Array[0, 6],
        Map, (p, t, entries, m) => With(new Autogen.BulkPublishRequest { PubsubName = p, Topic = t }, r => { r.Entries.Add(entries); r.Metadata.Add(m); }));

    private static Gen<Autogen.GetConfigurationRequest> Configuration => Gen.Select(Gen.Frequency((6, Gen.Const("appconfig")), (1, Str)), Gen.OneOf(Gen.Const("feature"), Str).Array[0, 5], Map,
        (s, keys, m) => With(new Autogen.GetConfigurationRequest { StoreName = s }, r => { r.Keys.Add(keys); r.Metadata.Add(m); }));

    private static Gen<Autogen.SubscribeConfigurationRequest> SubscribeConfiguration => Gen.Select(Gen.Frequency((6, Gen.Const("appconfig")), (1, Str)), Gen.OneOf(Gen.Const("feature"), Str).Array[0, 5], Map,
        (s, keys, m) => With(new Autogen.SubscribeConfigurationRequest { StoreName = s }, r => { r.Keys.Add(keys); r.Metadata.Add(m); }));

    /// <summary>Metadata a client can send: valid keys (binary ones end in -bin), ASCII or Latin-1 values.</summary>
    private static readonly Gen<KeyValuePair<string, string>[]> CallMetadata = Gen.Frequency(
        (3, Gen.Const(Array.Empty<KeyValuePair<string, string>>())),
        (2, Gen.Select(
            Gen.Frequency(
                (3, Gen.String[Gen.Char[MetadataKeyChars], 1, 20].Where(k => !k.StartsWith("grpc-", StringComparison.Ordinal) && k is not ("te" or "content-type" or "user-agent" or "host" or "dapr-api-token" or "connection" or "transfer-encoding" or "upgrade" or "keep-alive" or "proxy-connection"))),
                (2, Gen.OneOf(Gen.Const("traceparent"), Gen.Const("tracestate"), Gen.Const("dapr-app-id"), Gen.Const("dapr-caller-app-id"), Gen.Const("x-custom"), Gen.Const("data-bin")))),
            Gen.Frequency(
                (8, Gen.String[Gen.Char[' ', '~'], 0, 60]),
                (1, Gen.String[Gen.Frequency((6, Gen.Char[' ', '~']), (1, Gen.Char['\u0080', '\u00ff'])), 1, 60])),
            (k, v) => new KeyValuePair<string, string>(k, v)).Array[1, 4]));

    private static readonly Gen<string?> Token = Gen.Frequency<string?>(
        (97, Gen.Const<string?>(FuzzNode.AttackerToken)),
        (2, Gen.Const(default(string?))),
        (1, Gen.Const<string?>("not-a-token")));

    /// <summary>Every RPC: the message as built (mostly), mutated, or random bytes.</summary>
    public static readonly Gen<GrpcCase> All = Gen.Select(Messages, Gen.Int[0, 9], CallMetadata, Token).SelectMany(t =>
    {
        var (call, mode, metadata, token) = t;
        var valid = call.Message.ToByteArray();
        Gen<byte[]> payload = mode switch
        {
            < 7 => Gen.Const(valid),
            < 9 => FuzzText.Mutate(valid),
            _ => FuzzText.RandomBytes,
        };
        return payload.Select(bytes => new GrpcCase(call.Method, call.Streaming, bytes, metadata, token));
    });

    private static T With<T>(T message, Action<T> fill)
    {
        fill(message);
        return message;
    }
}
