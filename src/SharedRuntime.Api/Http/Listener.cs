namespace SharedRuntime.Http;

/// <summary>Which listener an endpoint belongs to; a request on another port does not reach it.</summary>
internal enum Listener { DaprHttp, DaprGrpc, Metrics }
