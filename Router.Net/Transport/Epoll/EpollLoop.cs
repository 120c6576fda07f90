using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Router.Net.Transport.Epoll;

/// <summary>
/// One event-loop thread with its own epoll set. Every socket registered here is edge-triggered for both directions
/// once, for life; each edge resumes the connection's waiting reader or writer inline on this thread, so a
/// connection's request handling runs here until it waits again.
/// </summary>
/// <remarks>
/// Registrations live in a slot table; the epoll data word carries the slot and a generation, so an event fetched
/// for a connection that closed meanwhile (and whose slot was reused) is recognised and dropped. Connect timeouts are
/// one timer descriptor per loop, armed for the earliest deadline (<see cref="BeginConnect"/>).
/// </remarks>
internal sealed unsafe class EpollLoop
{
    private const int MaxEvents = 256;

    // Listening sockets carry a token whose slot half is far beyond any slot table (uint.MaxValue - index), so the
    // per-event lookup below only looks for them when a token matches no connection.
    private const int MaxAcceptors = 64;
    private const ulong AcceptorTokenBase = ulong.MaxValue - MaxAcceptors;

    // The connect timer's token: below every listener's, and like theirs its slot half matches no connection.
    private const ulong ConnectTimerToken = AcceptorTokenBase;

    [ThreadStatic]
    private static EpollLoop? t_current;

    private readonly int _epoll;
    private readonly Lock _gate = new();
    private EpollConnection?[] _slots = new EpollConnection?[256];
    private int[] _free = new int[256];
    private int _freeCount;
    private int _used;
    private uint _generation;
    private EpollAcceptor?[] _acceptors = new EpollAcceptor?[MaxAcceptors];
    private readonly SafeFileHandle _connectTimer;

    // Connects in progress on this loop (each connection knows its index), and the deadline the timer is armed for
    // (long.MaxValue: not armed). Under _gate.
    private PendingConnect[] _connecting = new PendingConnect[16];
    private int _connectingCount;
    private long _timerDeadline = long.MaxValue;

    // Connects the timer found past their deadline, woken outside the lock. Loop thread only.
    private EpollConnection?[] _expired = new EpollConnection?[16];

    public EpollLoop(int index)
    {
        _epoll = EpollNative.EpollCreate(EpollNative.EpollCloexec);
        if (_epoll < 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }

        // Level-triggered: each expiry is read back (ExpireConnects), so the timer is readable again only when it is.
        _connectTimer = EpollNative.OpenTimer();
        int errno = Add(_connectTimer, EpollNative.EPOLLIN, ConnectTimerToken);
        if (errno != 0)
        {
            throw new SocketException((int)EpollNative.ToSocketError(errno));
        }

        var thread = new Thread(Run) { IsBackground = true, Name = "Router epoll " + index };
        thread.UnsafeStart();
        ThreadId = thread.ManagedThreadId;
    }

    /// <summary>The loop whose thread is running the caller, or null.</summary>
    public static EpollLoop? Current => t_current;

    /// <summary>The managed thread id of the loop thread (for upstream-pool affinity).</summary>
    public int ThreadId { get; }

    /// <summary>Adds the socket to this loop; from now on its edges reach <paramref name="connection"/>.</summary>
    public void Register(EpollConnection connection)
    {
        ulong token;
        lock (_gate)
        {
            int slot;
            if (_freeCount > 0)
            {
                slot = _free[--_freeCount];
            }
            else
            {
                if (_used == _slots.Length)
                {
                    var bigger = new EpollConnection?[_slots.Length * 2];
                    _slots.AsSpan().CopyTo(bigger);
                    Volatile.Write(ref _slots, bigger);
                }

                slot = _used++;
            }

            token = ((ulong)++_generation << 32) | (uint)slot;
            connection.Token = token;
            Volatile.Write(ref _slots[slot], connection);
        }

        int errno = Add(connection.Handle, EpollNative.EPOLLIN | EpollNative.EPOLLOUT | EpollNative.EPOLLRDHUP | EpollNative.EPOLLET, token);
        if (errno != 0)
        {
            Unregister(connection);
            throw new SocketException((int)EpollNative.ToSocketError(errno));
        }
    }

    /// <summary>Adds a listening socket, edge-triggered: each edge drains its backlog on this loop's thread.</summary>
    public void Register(EpollAcceptor acceptor)
    {
        int index;
        lock (_gate)
        {
            index = Array.IndexOf(_acceptors, null);
            if (index < 0)
            {
                throw new InvalidOperationException("too many listeners on one epoll loop");
            }

            Volatile.Write(ref _acceptors[index], acceptor);
        }

        int errno = Add(acceptor.Handle, EpollNative.EPOLLIN | EpollNative.EPOLLET, ulong.MaxValue - (ulong)index);
        if (errno != 0)
        {
            Volatile.Write(ref _acceptors[index], null);
            throw new SocketException((int)EpollNative.ToSocketError(errno));
        }
    }

    /// <summary>Takes a listening socket out of the epoll set (before it closes); no edge reaches it afterwards.</summary>
    public void Unregister(EpollAcceptor acceptor)
    {
        lock (_gate)
        {
            int index = Array.IndexOf(_acceptors, acceptor);
            if (index < 0)
            {
                return;
            }

            var ev = default(EpollNative.EpollEvent);
            _ = EpollNative.EpollCtl(_epoll, EpollNative.EpollCtlDel, acceptor.Handle, &ev);
            Volatile.Write(ref _acceptors[index], null);
        }
    }

    /// <summary>Frees the slot once the socket is closed (closing the descriptor already took it out of the epoll set).</summary>
    public void Unregister(EpollConnection connection)
    {
        lock (_gate)
        {
            int slot = (int)(uint)connection.Token;
            if (slot < _used && ReferenceEquals(_slots[slot], connection))
            {
                _slots[slot] = null;
                if (_freeCount == _free.Length)
                {
                    Array.Resize(ref _free, _free.Length * 2);
                }

                _free[_freeCount++] = slot;
            }
        }
    }

    /// <summary>
    /// Starts the connect timeout of <paramref name="connection"/>, registered here and waiting for its first write
    /// edge: unless <see cref="EndConnect"/> comes within <paramref name="timeoutMs"/>, this loop's timer takes the
    /// connect off its list and wakes that wait, and EndConnect then says it timed out. No timer or task per connect.
    /// </summary>
    public void BeginConnect(EpollConnection connection, int timeoutMs)
    {
        long now = Stopwatch.GetTimestamp();
        long deadline = now + (timeoutMs * Stopwatch.Frequency / 1000);
        lock (_gate)
        {
            if (_connectingCount == _connecting.Length)
            {
                Array.Resize(ref _connecting, _connecting.Length * 2);
            }

            connection.ConnectIndex = _connectingCount;
            _connecting[_connectingCount++] = new PendingConnect(connection, deadline);
            if (deadline < _timerDeadline)
            {
                _timerDeadline = deadline;
                EpollNative.ArmTimer(_connectTimer, Stopwatch.GetElapsedTime(now, deadline));
            }
        }
    }

    /// <summary>Ends a connect's timeout: true when it was still running, false when the timer had taken it off (timed out).</summary>
    public bool EndConnect(EpollConnection connection)
    {
        lock (_gate)
        {
            if (connection.ConnectIndex < 0)
            {
                return false;
            }

            RemoveConnect(connection.ConnectIndex);
            return true;
        }
    }

    /// <summary>Takes a connect off the list, moving the last one into its place. Under _gate.</summary>
    private void RemoveConnect(int index)
    {
        var removed = _connecting[index].Connection;
        var last = _connecting[--_connectingCount];
        _connecting[index] = last;
        last.Connection.ConnectIndex = index;
        _connecting[_connectingCount] = default;
        removed.ConnectIndex = -1;
    }

    /// <summary>
    /// From the loop, when the connect timer fired: takes the connects past their deadline off the list, re-arms the
    /// timer for the earliest one left, then wakes each expired connect's wait (inline, as an edge would).
    /// </summary>
    private void ExpireConnects()
    {
        EpollNative.ClearTimer(_connectTimer);
        int expired = 0;
        lock (_gate)
        {
            long now = Stopwatch.GetTimestamp();
            long next = long.MaxValue;

            // Backwards: a removal moves the last entry, already looked at, into this place.
            for (int i = _connectingCount - 1; i >= 0; i--)
            {
                var pending = _connecting[i];
                if (pending.Deadline > now)
                {
                    next = Math.Min(next, pending.Deadline);
                    continue;
                }

                if (expired == _expired.Length)
                {
                    Array.Resize(ref _expired, expired * 2);
                }

                _expired[expired++] = pending.Connection;
                RemoveConnect(i);
            }

            // A one-shot timer that fired is disarmed: only a deadline still ahead needs arming.
            _timerDeadline = next;
            if (next != long.MaxValue)
            {
                EpollNative.ArmTimer(_connectTimer, Stopwatch.GetElapsedTime(now, next));
            }
        }

        for (int i = 0; i < expired; i++)
        {
            var connection = _expired[i]!;
            _expired[i] = null;
            try
            {
                connection.OnConnectTimeout();
            }
            catch (Exception ex)
            {
                // As for an edge: a continuation that throws must not end the loop.
                connection.Abort("event loop: " + ex.GetType().Name);
            }
        }
    }

    /// <summary>Adds a descriptor to the epoll set with <paramref name="token"/> as its data word: 0, or the errno of the failure.</summary>
    private int Add(SafeHandle fd, uint events, ulong token)
    {
        var ev = new EpollNative.EpollEvent { Events = events, Data = token };
        return EpollNative.EpollCtl(_epoll, EpollNative.EpollCtlAdd, fd, &ev) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    private void Run()
    {
        t_current = this;
        var events = (EpollNative.EpollEvent*)NativeMemory.Alloc(MaxEvents, (nuint)sizeof(EpollNative.EpollEvent));
        while (true)
        {
            int n = EpollNative.EpollWait(_epoll, events, MaxEvents, -1);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EpollNative.EINTR)
                {
                    continue;
                }

                // Cannot happen with a valid epoll descriptor; if it does, every connection on this loop would hang
                // silently. Better to stop the process so its supervisor restarts it.
                Environment.FailFast("epoll_wait failed with errno " + errno);
            }

            var slots = Volatile.Read(ref _slots);
            for (int i = 0; i < n; i++)
            {
                ulong token = events[i].Data;
                uint slot = (uint)token;
                var connection = slot < (uint)slots.Length ? Volatile.Read(ref slots[slot]) : null;
                if (connection is null || connection.Token != token)
                {
                    if (token > AcceptorTokenBase)
                    {
                        Volatile.Read(ref _acceptors[(int)(ulong.MaxValue - token)])?.Drain();
                    }
                    else if (token == ConnectTimerToken)
                    {
                        ExpireConnects();
                    }

                    continue;
                }

                try
                {
                    connection.OnEvents(events[i].Events);
                }
                catch (Exception ex)
                {
                    // A continuation that throws must not end the loop that serves every other connection.
                    connection.Abort("event loop: " + ex.GetType().Name);
                }
            }
        }
    }

    private readonly record struct PendingConnect(EpollConnection Connection, long Deadline);
}
