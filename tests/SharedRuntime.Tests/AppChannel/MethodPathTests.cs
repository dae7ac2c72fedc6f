using SharedRuntime.AppChannel;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.AppChannel;

/// <summary>
/// The method path the access control judges is the path the app receives: a path a target framework could read as
/// another one is refused, and what is left matches the rules regardless of case.
/// </summary>
public class MethodPathTests
{
    private static readonly AccessControlConfig DenyAdmin = new(AccessAction.Allow, new Dictionary<string, AppAccessPolicy>
    {
        ["attacker"] = new(AccessAction.Allow, [new OperationAccess("/admin/*", ["*"], AccessAction.Deny), new OperationAccess("/admin/**", ["*"], AccessAction.Deny)]),
    });

    public enum Verdict { Refused, Denied, Allowed }

    private static Verdict Judge(string method, MethodPathForm form)
    {
        if (!MethodPath.TryParse(method, form, out var path, out var problem))
        {
            Assert.False(string.IsNullOrEmpty(problem));
            return Verdict.Refused;
        }
        return DenyAdmin.IsAllowed("attacker", path.Plain, "GET") ? Verdict.Allowed : Verdict.Denied;
    }

    [Theory]
    [InlineData("admin/x", Verdict.Denied)]
    [InlineData("/ADMIN/x", Verdict.Denied)]
    [InlineData("Admin/X/y", Verdict.Denied)]
    [InlineData("admin%2Fx", Verdict.Refused)]
    [InlineData("admin%2fx", Verdict.Refused)]
    [InlineData("%61dmin/x", Verdict.Denied)]
    [InlineData("%41DMIN/x", Verdict.Denied)]
    [InlineData("admin/./x", Verdict.Denied)]
    [InlineData("admin//x", Verdict.Denied)]
    [InlineData("./admin/x", Verdict.Denied)]
    [InlineData("public/../admin/x", Verdict.Denied)]
    [InlineData("../../admin/x", Verdict.Denied)]
    [InlineData("admin%5Cx", Verdict.Refused)]
    [InlineData("admin%5cx", Verdict.Refused)]
    [InlineData("admin\\x", Verdict.Refused)]
    [InlineData("..%2Fadmin", Verdict.Refused)]
    [InlineData("%2E%2E/admin/x", Verdict.Refused)]
    [InlineData("public/%2e%2e/admin/x", Verdict.Refused)]
    [InlineData("public/%2E/admin", Verdict.Refused)]
    [InlineData("admin%252Fx", Verdict.Refused)]
    [InlineData("admin%00/x", Verdict.Refused)]
    [InlineData("admin%0A/x", Verdict.Refused)]
    [InlineData("admin%3F/x", Verdict.Refused)]
    [InlineData("admin#/x", Verdict.Refused)]
    [InlineData("admin%FF/x", Verdict.Refused)]
    [InlineData("admin", Verdict.Denied)]
    [InlineData("public", Verdict.Allowed)]
    [InlineData("administrator/x", Verdict.Allowed)]
    [InlineData("public/admin", Verdict.Allowed)]
    [InlineData("orders/50%off", Verdict.Allowed)]
    public void An_encoded_or_cased_path_never_slips_past_a_deny_rule(string method, Verdict expected) =>
        Assert.Equal(expected, Judge(method, MethodPathForm.Encoded));

    [Theory]
    [InlineData("/ADMIN/x", Verdict.Denied)]
    [InlineData("admin%2Fx", Verdict.Refused)]   // Kestrel leaves %2F encoded
    [InlineData("admin%41x", Verdict.Refused)]   // was %2541: decoding again would change the path
    [InlineData("admin\\x", Verdict.Refused)]    // was %5C or a backslash
    [InlineData("admin//x", Verdict.Denied)]
    [InlineData("100%", Verdict.Allowed)]        // was %25: a literal percent sign
    public void A_path_the_http_server_decoded_is_not_decoded_twice(string method, Verdict expected) =>
        Assert.Equal(expected, Judge(method, MethodPathForm.Decoded));

    [Theory]
    [InlineData("orders/7", "orders/7", "orders/7")]
    [InlineData("/orders//7/", "orders/7", "orders/7")]
    [InlineData("a/../../secret", "secret", "secret")]
    [InlineData("a/./b", "a/b", "a/b")]
    [InlineData("with space/é", "with space/é", "with%20space/%C3%A9")]
    [InlineData("with%20space/%C3%A9", "with space/é", "with%20space/%C3%A9")]
    [InlineData("orders:pay", "orders:pay", "orders%3Apay")]
    [InlineData("", "", "")]
    public void The_app_receives_the_judged_segments_escaped(string method, string plain, string escaped)
    {
        Assert.True(MethodPath.TryParse(method, MethodPathForm.Encoded, out var path, out _));
        Assert.Equal(plain, path.Plain);
        Assert.Equal(escaped, path.Escaped);
        // What the app decodes from the escaped path is exactly what the access control saw.
        Assert.Equal(plain, string.Join('/', path.Escaped.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString)));
    }

    [Theory]
    [InlineData("/admin/**", "/ADMIN", true)]
    [InlineData("/Admin/*", "/admin/users", true)]
    [InlineData("/admin/*", "/ADMIN/users/1", false)]
    [InlineData("/my%20docs/*", "/My Docs/1", true)]
    [InlineData("/admin/*", "/admin/", false)]
    [InlineData("/orders", "/ORDERS/", true)]
    public void Operation_names_match_regardless_of_case(string name, string path, bool matches) =>
        Assert.Equal(matches, new OperationAccess(name, ["*"], AccessAction.Allow).Matches(path));

    [Fact]
    public void A_renamed_operation_matches_its_new_name() =>
        Assert.True((new OperationAccess("/a/*", ["*"], AccessAction.Deny) with { Name = "/b/*" }).Matches("/b/1"));

    [Theory]
    [InlineData("/sharedruntime.bench.Echo/Say", true)]
    [InlineData("orders/new-1_2", true)]
    [InlineData("/a//b", false)]
    [InlineData("/a/./b", false)]
    [InlineData("/a/../b", false)]
    [InlineData("/a/", false)]
    [InlineData("/", false)]
    [InlineData("", false)]
    [InlineData("/a%41/b", false)]
    [InlineData("/a b", false)]
    [InlineData("/a~b", false)]
    public void A_plain_path_is_taken_as_it_is_and_any_other_is_normalised(string method, bool plain)
    {
        Assert.Equal(plain, MethodPath.IsPlain(method));
        if (plain)
        {
            // What the general normalisation would give: the path without its leading slash, nothing escaped.
            Assert.True(MethodPath.TryParse(method, MethodPathForm.Decoded, out var path, out _));
            Assert.Equal(method.TrimStart('/'), path.Plain);
            Assert.Equal(method.TrimStart('/'), path.Escaped);
        }
    }

    [Theory]
    [InlineData("orders", "orders", "orders")]
    [InlineData("v1.0/state/store/k", "v1.0/state/store/k", "v1.0/state/store/k")]
    [InlineData("a-b_c~d/e.f", "a-b_c~d/e.f", "a-b_c~d/e.f")]
    [InlineData("a/../b", "b", "b")]
    [InlineData("a/./b/", "a/b", "a/b")]
    [InlineData("/a//b", "a/b", "a/b")]
    [InlineData("..", "", "")]
    [InlineData("a b/c", "a b/c", "a%20b/c")]
    [InlineData("caf\u00e9", "caf\u00e9", "caf%C3%A9")]
    public void A_path_already_in_its_one_form_is_kept_and_any_other_is_normalised(string method, string plain, string escaped)
    {
        Assert.True(MethodPath.TryParse(method, MethodPathForm.Decoded, out var path, out _));
        Assert.Equal(plain, path.Plain);
        Assert.Equal(escaped, path.Escaped);
    }
}
