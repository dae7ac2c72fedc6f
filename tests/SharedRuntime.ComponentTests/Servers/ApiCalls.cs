using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace SharedRuntime.ComponentTests.Servers;

/// <summary>Small helpers for tests that call a runtime over HTTP and build components directly.</summary>
internal static class ApiCalls
{
    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<JsonDocument> JsonAsync(HttpResponseMessage response, HttpStatusCode status = HttpStatusCode.OK)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body);
    }

    /// <summary>Asserts a Dapr-style error with <paramref name="status"/> and <paramref name="errorCode"/>.</summary>
    public static async Task ErrorAsync(HttpResponseMessage response, HttpStatusCode status, string errorCode)
    {
        using var json = await JsonAsync(response, status);
        Assert.Equal(errorCode, json.RootElement.GetProperty("errorCode").GetString());
    }

    public static ComponentContext Context(string name, string type, Dictionary<string, string> metadata) => new()
    {
        Name = name,
        Type = type,
        Version = "v1",
        Metadata = metadata,
        Services = new ServiceCollection().AddSingleton(NullLoggerFactory.Instance).BuildServiceProvider(),
    };
}
