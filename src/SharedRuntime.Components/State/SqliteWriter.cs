using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace SharedRuntime.Components.State;

/// <summary>
/// Runs a SQLite store's writes one at a time on a thread of its own, on one connection it keeps open for the store's
/// life. Microsoft.Data.Sqlite's calls are synchronous (its async methods only wrap them), and a write may wait for the
/// file's lock (<c>busyTimeout</c>) when another process writes: on this thread that waiting holds no thread-pool
/// thread, and callers only await. SQLite takes one writer at a time anyway, so one thread loses nothing; it also
/// replaces the write gate, since the queue is the order. Continuations never run on this thread.
/// </summary>
internal sealed class SqliteWriter : IAsyncDisposable
{
    private readonly BlockingCollection<Job> _jobs = [];
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _connectionString;
    private readonly Thread _thread;
    private bool _started;

    public SqliteWriter(string connectionString, string name)
    {
        _connectionString = connectionString;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
    }

    /// <summary>Starts the thread and opens its connection; fails when the file cannot be opened.</summary>
    public Task StartAsync()
    {
        _started = true;
        _thread.Start();
        return _opened.Task;
    }

    /// <summary>
    /// Queues <paramref name="work"/> and completes with its result once the writer has run it. A cancellation before the
    /// work starts takes it off the queue; once started, it runs to its end.
    /// </summary>
    public Task<T> RunAsync<T>(Func<SqliteConnection, T> work, CancellationToken cancellationToken)
    {
        var job = new Job<T>(work, cancellationToken);
        try
        {
            _jobs.Add(job, CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
            throw new ObjectDisposedException(nameof(SqliteWriter), "the sqlite state store is closed");
        }
        return job.Task;
    }

    private void Run()
    {
        SqliteConnection connection;
        try
        {
            connection = new SqliteConnection(_connectionString);
            connection.Open();
        }
        catch (Exception ex)
        {
            _opened.TrySetException(ex);
            _stopped.TrySetResult();
            return;
        }
        _opened.TrySetResult();
        try
        {
            foreach (var job in _jobs.GetConsumingEnumerable())
            {
                job.Run(connection);
            }
        }
        finally
        {
            connection.Dispose();
            _stopped.TrySetResult();
        }
    }

    /// <summary>Runs what is queued, then closes the connection and ends the thread.</summary>
    public async ValueTask DisposeAsync()
    {
        _jobs.CompleteAdding();
        if (_started)
        {
            await _stopped.Task.ConfigureAwait(false);
        }
        _jobs.Dispose();
    }

    private abstract class Job
    {
        public abstract void Run(SqliteConnection connection);
    }

    private sealed class Job<T> : Job
    {
        private const int Queued = 0, Started = 1, Cancelled = 2;
        private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Func<SqliteConnection, T> _work;
        private readonly CancellationTokenRegistration _cancellation;
        private int _state;

        public Job(Func<SqliteConnection, T> work, CancellationToken cancellationToken)
        {
            _work = work;
            _cancellation = cancellationToken.UnsafeRegister(static (state, token) =>
            {
                var job = (Job<T>)state!;
                if (Interlocked.CompareExchange(ref job._state, Cancelled, Queued) == Queued)
                {
                    job._result.TrySetCanceled(token);
                }
            }, this);
        }

        public Task<T> Task => _result.Task;

        public override void Run(SqliteConnection connection)
        {
            _cancellation.Dispose();
            if (Interlocked.CompareExchange(ref _state, Started, Queued) != Queued)
            {
                return;
            }
            try
            {
                _result.TrySetResult(_work(connection));
            }
            catch (Exception ex)
            {
                _result.TrySetException(ex);
            }
        }
    }
}
