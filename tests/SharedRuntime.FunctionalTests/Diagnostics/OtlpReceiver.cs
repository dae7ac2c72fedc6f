using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;

namespace SharedRuntime.FunctionalTests.Diagnostics;

/// <summary>One span as an OTLP collector received it; ids in lowercase hex, an empty parent for a root.</summary>
public sealed record ReceivedSpan(string TraceId, string SpanId, string ParentSpanId, string Name, int Kind, IReadOnlyDictionary<string, string> Attributes)
{
    public string? AppId => Attributes.GetValueOrDefault("app_id");
}

/// <summary>
/// An OTLP/HTTP collector on loopback: takes <c>POST /v1/traces</c> with an <c>ExportTraceServiceRequest</c> in
/// protobuf and keeps its spans. The message is read field by field (ResourceSpans 1 -> ScopeSpans 2 -> Span 2), so no
/// generated OTLP types are needed.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly TestApp _app;

    private OtlpReceiver(TestApp app, ConcurrentQueue<ReceivedSpan> spans)
    {
        _app = app;
        Spans = spans;
    }

    public ConcurrentQueue<ReceivedSpan> Spans { get; }

    public Uri Endpoint => _app.Address;

    public static async Task<OtlpReceiver> StartAsync()
    {
        var spans = new ConcurrentQueue<ReceivedSpan>();
        var app = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path != "/v1/traces")
            {
                context.Response.StatusCode = 404;
                return;
            }
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            foreach (var span in Parse(body.ToArray()))
            {
                spans.Enqueue(span);
            }
            // An empty ExportTraceServiceResponse.
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
        });
        return new OtlpReceiver(app, spans);
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    internal static IEnumerable<ReceivedSpan> Parse(byte[] request)
    {
        foreach (var resourceSpans in Messages(request, 1))
        {
            foreach (var scopeSpans in Messages(resourceSpans, 2))
            {
                foreach (var span in Messages(scopeSpans, 2))
                {
                    yield return Span(span);
                }
            }
        }
    }

    /// <summary>The embedded messages in field <paramref name="number"/> of <paramref name="message"/>.</summary>
    private static List<byte[]> Messages(byte[] message, int number)
    {
        var result = new List<byte[]>();
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                result.Add(input.ReadBytes().ToByteArray());
            }
            else
            {
                input.SkipLastField();
            }
        }
        return result;
    }

    private static ReceivedSpan Span(byte[] span)
    {
        string traceId = "", spanId = "", parent = "", name = "";
        var kind = 0;
        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        var input = new CodedInputStream(span);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: traceId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 2: spanId = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 4: parent = Convert.ToHexStringLower(input.ReadBytes().Span); break;
                case 5: name = input.ReadString(); break;
                case 6: kind = input.ReadEnum(); break;
                case 9:
                    var (key, value) = Attribute(input.ReadBytes().ToByteArray());
                    attributes[key] = value;
                    break;
                default: input.SkipLastField(); break;
            }
        }
        return new ReceivedSpan(traceId, spanId, parent, name, kind, attributes);
    }

    /// <summary>A KeyValue: key (1) and an AnyValue (2) read as its string (1) or integer (3) value.</summary>
    private static (string Key, string Value) Attribute(byte[] keyValue)
    {
        string key = "", value = "";
        var input = new CodedInputStream(keyValue);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == 1)
            {
                key = input.ReadString();
            }
            else if (WireFormat.GetTagFieldNumber(tag) == 2)
            {
                var any = new CodedInputStream(input.ReadBytes().ToByteArray());
                uint anyTag;
                while ((anyTag = any.ReadTag()) != 0)
                {
                    switch (WireFormat.GetTagFieldNumber(anyTag))
                    {
                        case 1: value = any.ReadString(); break;
                        case 3: value = any.ReadInt64().ToString(System.Globalization.CultureInfo.InvariantCulture); break;
                        default: any.SkipLastField(); break;
                    }
                }
            }
            else
            {
                input.SkipLastField();
            }
        }
        return (key, value);
    }
}
