using System.Buffers;
using System.Text;
using NUnit.Framework;
using Router.Net.Http1;
using static Router.Tests.Net.Http1.TestInput;

namespace Router.Tests.Net.Http1;

public sealed class ChunkedDecoderTests
{
    private static readonly Dictionary<string, string> Valid = new()
    {
        ["one chunk"] = "5\r\nhello\r\n0\r\n\r\n",
        ["several chunks, mixed-case hex"] = "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n1A\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n4\r\n\r\n\r\n\r\n000\r\n\r\n",
        ["extensions"] = "5;name=value; flag ;q=\"a b\"\r\nhello\r\n4 ;x\r\n\r\n\r\n\r\n0;last\r\n\r\n",
        ["trailers"] = "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\nX-Tab:\tv \r\n\r\n",
        ["empty body"] = "0\r\n\r\n",
    };

    // The data each of Valid carries, without framing, extensions or trailers.
    private static readonly Dictionary<string, string> Data = new()
    {
        ["one chunk"] = "hello",
        ["several chunks, mixed-case hex"] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n\r\n",
        ["extensions"] = "hello\r\n\r\n",
        ["trailers"] = "hello",
        ["empty body"] = "",
    };

    private static IEnumerable<string> ValidNames => Valid.Keys;

    [TestCaseSource(nameof(ValidNames))]
    public void WholeBody_IsConsumedUpToItsEndAndNoFurther(string name)
    {
        var body = Valid[name];
        var decoder = new ChunkedDecoder(HttpLimits.Default);
        var done = decoder.Advance(new ReadOnlySequence<byte>(Bytes(body + "GET / HTTP/1.1\r\n")), out var consumed);
        Assert.Multiple(() =>
        {
            Assert.That(done, Is.True);
            Assert.That(decoder.IsComplete, Is.True);
            Assert.That(consumed, Is.EqualTo(body.Length));
        });
    }

    [TestCaseSource(nameof(ValidNames))]
    public void EveryTwoSegmentSplit_InOneCall_EndsAtTheSamePlace(string name)
    {
        var bytes = Bytes(Valid[name] + "next");
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            var decoder = default(ChunkedDecoder);
            Assert.That(decoder.Advance(Split(bytes, cut), out var consumed), Is.True, $"cut at {cut}");
            Assert.That(consumed, Is.EqualTo(bytes.Length - 4), $"cut at {cut}");
        }
    }

    [TestCaseSource(nameof(ValidNames))]
    public void EverySplitAcrossTwoReads_ConsumesAllOfTheFirstAndEndsInTheSecond(string name)
    {
        var bytes = Bytes(Valid[name]);
        for (var cut = 0; cut < bytes.Length; cut++)
        {
            var decoder = default(ChunkedDecoder);
            Assert.That(decoder.Advance(new ReadOnlySequence<byte>(bytes, 0, cut), out var first), Is.False, $"cut at {cut}");
            Assert.That(first, Is.EqualTo(cut), "every byte of a valid prefix is consumed");
            Assert.That(decoder.Advance(new ReadOnlySequence<byte>(bytes, cut, bytes.Length - cut), out var second), Is.True);
            Assert.That(first + second, Is.EqualTo(bytes.Length));
        }
    }

    [TestCaseSource(nameof(ValidNames))]
    public void ByteAtATime_ReachesTheEndOnTheLastByte(string name)
    {
        var bytes = Bytes(Valid[name]);
        var decoder = default(ChunkedDecoder);
        for (var i = 0; i < bytes.Length; i++)
        {
            var done = decoder.Advance(new ReadOnlySequence<byte>(bytes, i, 1), out var consumed);
            Assert.That(consumed, Is.EqualTo(1));
            Assert.That(done, Is.EqualTo(i == bytes.Length - 1), $"byte {i}");
        }
    }

    [TestCaseSource(nameof(ValidNames))]
    public void Decode_OfEverySplitAcrossTwoReads_WritesExactlyTheChunkData_AndConsumesAsAdvanceDoes(string name)
    {
        var bytes = Bytes(Valid[name] + "next");
        int end = bytes.Length - 4;
        for (var cut = 0; cut <= end; cut++)
        {
            var decoder = new ChunkedDecoder(HttpLimits.Default);
            var data = new ArrayBufferWriter<byte>();
            bool firstDone = decoder.Decode(new ReadOnlySequence<byte>(bytes, 0, cut), data, out var first);
            Assert.That(firstDone, Is.EqualTo(cut == end), $"cut at {cut}");
            Assert.That(decoder.Decode(Split(bytes[cut..], 1), data, out var second), Is.True, $"cut at {cut}");
            Assert.That(first + second, Is.EqualTo(end), $"cut at {cut}: up to the body's end and no further");
            Assert.That(Encoding.Latin1.GetString(data.WrittenSpan), Is.EqualTo(Data[name]), $"cut at {cut}");
        }
    }

    [Test]
    public void PartialChunkData_IsConsumedAndTheRestExpected()
    {
        var decoder = default(ChunkedDecoder);
        Assert.That(decoder.Advance(new ReadOnlySequence<byte>(Bytes("a\r\n0123")), out var consumed), Is.False);
        Assert.Multiple(() =>
        {
            Assert.That(consumed, Is.EqualTo(7));
            Assert.That(decoder.RemainingChunkBytes, Is.EqualTo(6));
        });
    }

    [Test]
    public void Reset_AllowsTheNextBody()
    {
        var decoder = new ChunkedDecoder(HttpLimits.Default);
        decoder.Advance(new ReadOnlySequence<byte>(Bytes("0\r\n\r\n")), out _);
        decoder.Reset();
        Assert.That(decoder.IsComplete, Is.False);
        Assert.That(decoder.Advance(new ReadOnlySequence<byte>(Bytes("1\r\nx\r\n0\r\n\r\n")), out var consumed), Is.True);
        Assert.That(consumed, Is.EqualTo(11));
    }

    [Test]
    public void LargestChunkSize_IsAccepted()
    {
        var decoder = default(ChunkedDecoder);
        decoder.Advance(new ReadOnlySequence<byte>(Bytes("7fffffffffffffff\r\n")), out _);
        Assert.That(decoder.RemainingChunkBytes, Is.EqualTo(long.MaxValue));
    }

    [TestCase("\r\n", nameof(RejectionReason.InvalidChunkSize))]
    [TestCase("g\r\n", nameof(RejectionReason.InvalidChunkSize))]
    [TestCase("-1\r\n", nameof(RejectionReason.InvalidChunkSize))]
    [TestCase("0x5\r\n", nameof(RejectionReason.InvalidChunkSize))]
    [TestCase("8000000000000000\r\n", nameof(RejectionReason.InvalidChunkSize))]
    [TestCase("00000000000000005\r\n", nameof(RejectionReason.InvalidChunkSize))]
    [TestCase(" 5\r\n", nameof(RejectionReason.InvalidChunkSize))]
    [TestCase("5\n", nameof(RejectionReason.BareLineFeed))]
    [TestCase("5;a\n", nameof(RejectionReason.BareLineFeed))]
    [TestCase("5\rx", nameof(RejectionReason.BareCarriageReturn))]
    [TestCase("5 \r\n", nameof(RejectionReason.InvalidChunkExtension))]
    [TestCase("5 x\r\n", nameof(RejectionReason.InvalidChunkExtension))]
    [TestCase("5;a\u0001b\r\n", nameof(RejectionReason.InvalidChunkExtension))]
    [TestCase("5\r\nhelloX\r\n", nameof(RejectionReason.MissingChunkDataTerminator))]
    [TestCase("5\r\nhello\rX", nameof(RejectionReason.MissingChunkDataTerminator))]
    [TestCase("5\r\nhello\n", nameof(RejectionReason.BareLineFeed))]
    [TestCase("0\r\nX y: z\r\n\r\n", nameof(RejectionReason.InvalidTrailer))]
    [TestCase("0\r\n: z\r\n\r\n", nameof(RejectionReason.InvalidTrailer))]
    [TestCase("0\r\n z\r\n\r\n", nameof(RejectionReason.InvalidTrailer))]
    [TestCase("0\r\nX: a\u0000\r\n\r\n", nameof(RejectionReason.InvalidTrailer))]
    [TestCase("0\r\nNoColon\r\n\r\n", nameof(RejectionReason.InvalidTrailer))]
    [TestCase("0\r\nX: a\n\r\n", nameof(RejectionReason.BareLineFeed))]
    [TestCase("0\r\n\rX", nameof(RejectionReason.BareCarriageReturn))]
    public void MalformedFraming_IsRejectedWith400(string body, string reason)
    {
        var exception = Reject(body, HttpLimits.Default);
        Assert.That((exception.Reason, exception.StatusCode), Is.EqualTo((Enum.Parse<RejectionReason>(reason), 400)));
    }

    [Test]
    public void SizeLineOver4KiB_IsRejected()
    {
        var exception = Reject("5;" + new string('a', ChunkedDecoder.MaxSizeLineBytes) + "\r\n", HttpLimits.Default);
        Assert.That((exception.Reason, exception.StatusCode), Is.EqualTo((RejectionReason.ChunkSizeLineTooLong, 400)));
    }

    [Test]
    public void TrailerSectionOverTheHeaderLimit_IsRejectedWith431()
    {
        var exception = Reject("0\r\nX: " + new string('a', 100) + "\r\n\r\n", new HttpLimits { MaxHeaderBytes = 64 });
        Assert.That((exception.Reason, exception.StatusCode), Is.EqualTo((RejectionReason.TrailersTooLarge, 431)));
    }

    private static Http1Exception Reject(string body, HttpLimits limits)
    {
        var bytes = Bytes(body);
        return Assert.Throws<Http1Exception>(() =>
        {
            var decoder = new ChunkedDecoder(limits);
            decoder.Advance(new ReadOnlySequence<byte>(bytes), out _);
        })!;
    }

    [Test]
    public void DataBytes_IsTheSumOfTheChunkSizes_KnownOnceEachSizeLineIsRead()
    {
        var decoder = new ChunkedDecoder(HttpLimits.Default);
        decoder.Advance(new ReadOnlySequence<byte>(Bytes("5\r\nhello\r\n1a\r\n")), out _);
        Assert.That(decoder.DataBytes, Is.EqualTo(5 + 26), "the second chunk counts before its data arrives");
        decoder.Reset();
        Assert.That(decoder.DataBytes, Is.Zero);
    }

    [Test]
    public void DataBytes_OfTheLargestChunkSize_IsExact()
    {
        var decoder = new ChunkedDecoder(HttpLimits.Default);
        decoder.Advance(new ReadOnlySequence<byte>(Bytes("7fffffffffffffff\r\n")), out _);
        Assert.That(decoder.DataBytes, Is.EqualTo(long.MaxValue));
    }
}
