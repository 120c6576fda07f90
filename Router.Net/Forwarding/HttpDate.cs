using System.Buffers;
using System.Buffers.Text;

namespace Router.Net.Forwarding;

/// <summary>
/// The current time as an IMF-fixdate (RFC 9110 §5.6.7: <c>Sun, 06 Nov 1994 08:49:37 GMT</c>), formatted at most once
/// a second, for the <c>Date</c> the router adds to a forwarded response that came without one.
/// </summary>
internal static class HttpDate
{
    private static byte[] s_value = [];
    private static long s_expires;

    public static ReadOnlySpan<byte> Current
    {
        get
        {
            // The deadline first: it is written after the value, so a current deadline means a current value.
            long now = Environment.TickCount64;
            if (now < Volatile.Read(ref s_expires))
            {
                return Volatile.Read(ref s_value);
            }

            return Refresh(now);
        }
    }

    private static byte[] Refresh(long now)
    {
        var utc = DateTime.UtcNow;
        var value = new byte[29];
        Utf8Formatter.TryFormat(utc, value, out _, new StandardFormat('R'));
        Volatile.Write(ref s_value, value);
        Volatile.Write(ref s_expires, now + 1000 - utc.Millisecond);
        return value;
    }
}
