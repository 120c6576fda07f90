using System.Text;
using NUnit.Framework;
using Router.Core.Routing;

namespace Router.Tests.Core.Routing;

public sealed class HostTableTests
{
    [Test]
    public void TenThousandSimilarHosts_SpreadWithShortProbeChains()
    {
        var entries = Enumerable.Range(0, 10_000).ToDictionary(i => $"host{i}.example.test", i => (object)i);

        var table = new HostTable<object>(entries);

        Assert.Multiple(() =>
        {
            Assert.That(table.MaxProbeLength, Is.LessThanOrEqualTo(16));
            Assert.That(table.Find(Encoding.ASCII.GetBytes("HOST9999.EXAMPLE.TEST")), Is.EqualTo(9999));
            Assert.That(table.Find(Encoding.ASCII.GetBytes("host10000.example.test")), Is.Null);
        });
        TestContext.Out.WriteLine($"max probe length: {table.MaxProbeLength}");
    }

    [Test]
    public void Hash_OfSuffixDuringRightToLeftPass_EqualsHashOfSuffixAlone()
    {
        var host = "a.b.Example.test"u8;
        var state = HostTable<object>.Start;
        for (var i = host.Length - 1; i >= 0; i--)
        {
            state = HostTable<object>.Step(state, host[i]);
            Assert.That(HostTable<object>.Finish(state), Is.EqualTo(HostTable<object>.Hash(host[i..])));
        }
    }
}
