namespace SharedRuntime.Components;

/// <summary>A component failed in a way the caller can report to the app.</summary>
internal class ComponentException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The component's backend answered, and refused the request for what it carries (data it cannot store, a name of the
/// wrong kind). The backend is well: breakers never count it, and the caller gets a 4xx.
/// </summary>
internal class ComponentRequestRejectedException(string message, Exception? inner = null) : ComponentException(message, inner);
