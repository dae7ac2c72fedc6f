using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

/// <summary>
/// One tenant as a call into its app sees it, compiled from one snapshot: its channel (null without an appEndpoint)
/// and the access control that guards calls into it.
/// </summary>
internal sealed record AppTarget(string AppId, AppChannel? Channel, AccessControlConfig? AccessControl);
