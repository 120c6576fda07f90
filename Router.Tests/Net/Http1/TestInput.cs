using System.Buffers;
using System.Text;
using Router.Net.Http1;

namespace Router.Tests.Net.Http1;

/// <summary>Builds (multi-segment) input and readable snapshots of parsed heads.</summary>
internal static class TestInput
{
    public static byte[] Bytes(string text) => Encoding.Latin1.GetBytes(text);

    /// <summary>The bytes cut at the given offsets, each piece its own segment (empty pieces included).</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] cuts)
    {
        var start = 0;
        Segment? first = null;
        Segment? last = null;
        foreach (var cut in cuts.Append(data.Length))
        {
            // Copy each piece so a read past a segment's end can't see the next one's bytes.
            var piece = new Segment(data.AsSpan(start, cut - start).ToArray());
            if (first is null)
            {
                first = piece;
            }
            else
            {
                last!.Append(piece);
            }

            last = piece;
            start = cut;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    public static string Text(byte[] buffer, HeadSegment segment) => Encoding.Latin1.GetString(buffer, segment.Start, segment.Length);

    public static string Describe(HttpRequestHead head)
    {
        var text = new StringBuilder()
            .Append($"{head.Method} '{Text(head.Buffer, head.MethodToken)}' target='{Text(head.Buffer, head.Target)}' ")
            .Append($"path='{Text(head.Buffer, head.Path)}' query='{Text(head.Buffer, head.Query)}' host='{Text(head.Buffer, head.Host)}' ")
            .Append($"{head.Version} length={head.Length} cl={head.ContentLength} chunked={head.Chunked} connection={head.Connection} ")
            .Append($"upgrade={head.HasUpgrade} expect={head.ExpectContinue} keepAlive={head.KeepAlive} underscore={head.UnderscoreInNames}");
        AppendHeaders(text, head.Buffer, head.Headers, head.HeaderCount);
        return text.ToString();
    }

    public static string Describe(HttpResponseHead head)
    {
        var text = new StringBuilder()
            .Append($"{head.Version} {head.StatusCode} '{Text(head.Buffer, head.Reason)}' length={head.Length} ")
            .Append($"cl={head.ContentLength} chunked={head.Chunked} connection={head.Connection} keepAlive={head.KeepAlive}");
        AppendHeaders(text, head.Buffer, head.Headers, head.HeaderCount);
        return text.ToString();
    }

    private static void AppendHeaders(StringBuilder text, byte[] buffer, HeaderField[] headers, int count)
    {
        for (var i = 0; i < count; i++)
        {
            text.Append($"\n{Text(buffer, headers[i].Name)}: [{Text(buffer, headers[i].Value)}]");
        }
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes) => Memory = bytes;

        public void Append(Segment next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
        }
    }
}
