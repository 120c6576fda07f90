using NUnit.Framework;

namespace Router.Tests;

public sealed class SmokeTests
{
    [Test]
    public void Build_Works() => Assert.Pass();
}
