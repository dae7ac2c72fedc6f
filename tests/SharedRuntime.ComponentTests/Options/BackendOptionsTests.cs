using Npgsql;
using SharedRuntime.Components.State;

namespace SharedRuntime.ComponentTests.Options;

/// <summary>Dapr metadata as people write it in Component files maps onto the client settings.</summary>
public sealed class BackendOptionsTests
{
    private static ComponentContext Context(string type, Dictionary<string, string> metadata) => new()
    {
        Name = "statestore",
        Type = type,
        Version = "v1",
        Metadata = metadata,
        Services = EmptyServices.Instance,
    };

    [Fact]
    public void RedisMetadataMapsToConnectionSettings()
    {
        var options = RedisStateOptions.From(Context("state.redis", new()
        {
            ["redisHost"] = "cache:6380",
            ["redisPassword"] = "secret",
            ["redisUsername"] = "app",
            ["enableTLS"] = "true",
            ["redisDB"] = "2",
            ["dialTimeout"] = "500ms",
            ["readTimeout"] = "2s",
        }));
        var configuration = options.Configuration;
        var endpoint = Assert.IsType<System.Net.DnsEndPoint>(Assert.Single(configuration.EndPoints));
        Assert.Equal(("cache", 6380), (endpoint.Host, endpoint.Port));
        Assert.Equal(("app", "secret", true, 2), (configuration.User, configuration.Password, configuration.Ssl, configuration.DefaultDatabase));
        Assert.Equal((500, 2000), (configuration.ConnectTimeout, configuration.AsyncTimeout));
        Assert.False(configuration.AbortOnConnectFail);
    }

    [Fact]
    public void RedisWithoutHostIsRefused() =>
        Assert.Throws<ComponentException>(() => RedisStateOptions.From(Context("state.redis", [])));

    [Fact]
    public void PostgreSqlAcceptsLibpqConnectionStrings()
    {
        var options = PostgreSqlStateOptions.From(Context("state.postgresql", new()
        {
            ["connectionString"] = "host=db port=5433 user=dapr password=pw dbname=state connect_timeout=7",
            ["tableName"] = "app.orders",
            ["timeout"] = "30s",
        }));
        var builder = new NpgsqlConnectionStringBuilder(options.ConnectionString);
        Assert.Equal(("db", 5433, "dapr", "pw", "state", 7, 30), (builder.Host, builder.Port, builder.Username, builder.Password, builder.Database, builder.Timeout, builder.CommandTimeout));
        Assert.Equal(("app.orders", "orders"), (options.Table, options.BareTable));
    }

    [Fact]
    public async Task PostgreSqlPreparesItsStatementsAndSkipsThePoolResetUnlessTheConnectionStringSaysOtherwise()
    {
        static async Task<(bool Prepare, int MaxAutoPrepare, bool NoResetOnClose)> Settings(string raw)
        {
            var options = PostgreSqlStateOptions.From(Context("state.postgresql", new() { ["connectionString"] = raw }));
            var (source, prepare) = PostgreSqlStateStore.CreateSource(options.ConnectionString);
            await using (source)
            {
                var builder = new NpgsqlConnectionStringBuilder(source.ConnectionString);
                return (prepare, builder.MaxAutoPrepare, builder.NoResetOnClose);
            }
        }

        Assert.Equal((true, 0, true), await Settings("host=db user=dapr"));
        Assert.Equal((false, 0, false), await Settings("Host=db;Username=dapr;Max Auto Prepare=0;No Reset On Close=false"));
        Assert.Equal((false, 10, true), await Settings("Host=db;Username=dapr;Max Auto Prepare=10"));
    }

    [Theory]
    [InlineData("state; DROP TABLE x")]
    [InlineData("1state")]
    [InlineData("a.b.c")]
    public void PostgreSqlRefusesTableNamesThatAreNotIdentifiers(string table) =>
        Assert.Throws<ComponentException>(() => PostgreSqlStateOptions.From(Context("state.postgresql", new()
        {
            ["connectionString"] = "Host=db",
            ["tableName"] = table,
        })));

    [Theory]
    [InlineData("a", "a")]
    [InlineData("x*", "x\\*")]
    [InlineData("x?[1]", "x\\?\\[1\\]")]
    public void RedisUsagePatternEscapesGlobCharacters(string prefix, string escaped) =>
        Assert.Equal(escaped, RedisStateStore.EscapeGlob(prefix));
}

internal sealed class EmptyServices : IServiceProvider
{
    public static readonly EmptyServices Instance = new();

    public object? GetService(Type serviceType) => null;
}
